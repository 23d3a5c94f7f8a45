"""Our extractor against the answers the upstream evaluations recorded, on every shared pool that has both
(``benchmarks/extraction_agreement.py``; skipped when ../shared/data is absent)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from benchmark_scripts import load_benchmark


def _script() -> ModuleType:
    return load_benchmark("extraction_agreement")


# The chatgpt pool's upstream recorded the first date of the answer line ("The date a month ago from 12/30/2014
# is 11/30/2014" -> 12/30/2014); every one of its remaining disagreements was read by hand (BENCHMARKS.md).
FLOORS = {"chatgpt_date_natural-program_x10": 0.99}


@pytest.fixture(scope="module")
def tallies(shared_data: Path) -> dict[str, object]:
    """Every shared pool measured once (about 20 s on the project's machine)."""
    measure = _script().measure
    found = {}
    for path in sorted((shared_data / "pools").glob("*.jsonl.gz")):
        tally = measure(path, show=0)
        if tally is not None:
            found[tally.pool] = tally
    return found


def test_the_share_of_samples_read_as_upstream_did_meets_the_floor_on_every_pool(tallies: dict) -> None:
    measured = {name: t.share for name, t in tallies.items() if t.compared >= 100}
    assert len(measured) >= 5, measured
    for pool, share in measured.items():
        assert share >= FLOORS.get(pool, 0.995), (pool, share)


def test_programs_are_never_compared_since_their_answer_is_not_in_the_text(tallies: dict) -> None:
    tally = tallies.get("llama2-13b_gsm8k-400_pot_x48")
    if tally is None:
        pytest.skip("the LLaMA-2 pool is not there")
    assert tally.compared == 0 and tally.programs > 0.9 * (tally.samples - tally.no_upstream)
