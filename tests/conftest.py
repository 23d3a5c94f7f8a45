"""Shared fixtures. The full replay pools live beside the project in ../shared/data (or $DYNSCALING_DATA);
tests that need them skip cleanly when they are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# benchmarks/mutation.py runs the suite many times in one process (mutmut forks per mutant), which trips
# hypothesis' executor check and would make survivors depend on random draws; this profile fixes both.
settings.register_profile(
    "mutation", derandomize=True, database=None, suppress_health_check=[HealthCheck.differing_executors]
)
if os.environ.get("DYNSCALING_MUTATION") == "1":
    settings.load_profile("mutation")

ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path | None:
    configured = os.environ.get("DYNSCALING_DATA")
    candidate = Path(configured) if configured else ROOT.parent / "shared" / "data"
    return candidate if (candidate / "pools").is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; skips the test when it is not there."""
    found = shared_data_dir()
    if found is None:
        pytest.skip("../shared/data is not here (set DYNSCALING_DATA to point at it)")
    return found


@pytest.fixture(scope="session")
def shared_pool(shared_data: Path):  # noqa: ANN201 (returns a loader)
    """Load a shared pool by name, once per session."""
    from dynscaling import load_pool

    cache: dict[tuple[str, str], object] = {}

    def load(name: str, answers: str = "extract"):  # noqa: ANN202
        key = (name, answers)
        if key not in cache:
            cache[key] = load_pool(shared_data / "pools" / f"{name}.jsonl.gz", answers=answers)  # type: ignore[arg-type]
        return cache[key]

    return load
