"""Where the benchmark files are: the folders searched, in order, and where a missing file should go.

1. ``data_dir`` (``--data-dir``): a benchmarks folder (``gsm8k/``, ``math500/``, ...) or a data folder holding
   ``benchmarks/``; only there.
2. ``$DYNSCALING_BENCHMARKS``: a benchmarks folder; only there.
3. ``$DYNSCALING_DATA``: a data folder; its ``benchmarks/``, only there.
4. Otherwise ``../shared/data/benchmarks`` from the current directory (the project's layout), then
   ``$DYNSCALING_HOME/data/benchmarks`` (default ``~/.dynscaling/data/benchmarks``), where a missing file should go.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .registry import DatasetSpec

__all__ = ["DATA_ENV_VAR", "ENV_VAR", "Location", "benchmark_folders", "find_benchmarks_dir", "locate"]

ENV_VAR = "DYNSCALING_BENCHMARKS"
DATA_ENV_VAR = "DYNSCALING_DATA"
HOME_ENV_VAR = "DYNSCALING_HOME"


@dataclass(frozen=True)
class Location:
    """Where a benchmark's file is (``found``), or, when it is on no searched folder, where it should go."""

    spec: DatasetSpec
    found: Path | None
    expected: Path
    searched: tuple[Path, ...]

    def missing_hint(self) -> str:
        """``put gsm8k/test.jsonl at /home/me/.dynscaling/data/benchmarks/gsm8k/test.jsonl``."""
        return f"put {self.spec.path} at {self.expected}"


def _folder(value: str | Path, what: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_dir():
        raise InputError(f"{what}: no such folder; it should be a benchmarks folder (holding gsm8k/, math500/, "
                         "...) or a data folder holding benchmarks/", path=str(value))
    return path


def _home_benchmarks() -> Path:
    home = os.environ.get(HOME_ENV_VAR)
    return (Path(home).expanduser() if home else Path.home() / ".dynscaling") / "data" / "benchmarks"


def benchmark_folders(data_dir: str | Path | None = None) -> tuple[Path, ...]:
    """The benchmarks folders to search, in order (see the module docstring); a missing file goes in the first.

    Raises ``InputError`` when an explicit folder (``data_dir`` or an environment variable) does not exist."""
    if data_dir is not None:
        path = _folder(data_dir, "benchmarks folder not found (data_dir, --data-dir)")
        return (path / "benchmarks",) if (path / "benchmarks").is_dir() else (path,)
    configured = os.environ.get(ENV_VAR)
    if configured:
        return (_folder(configured, f"${ENV_VAR} points at no folder"),)
    data = os.environ.get(DATA_ENV_VAR)
    if data:
        return (_folder(data, f"${DATA_ENV_VAR} points at no folder") / "benchmarks",)
    shared = (Path.cwd() / ".." / "shared" / "data" / "benchmarks").resolve()
    return (shared, _home_benchmarks()) if shared.is_dir() else (_home_benchmarks(),)


def locate(spec: DatasetSpec, data_dir: str | Path | None = None) -> Location:
    """Where ``spec``'s file is on disk, or where it should be put."""
    folders = benchmark_folders(data_dir)
    for folder in folders:
        candidate = folder / spec.path
        if candidate.exists():
            return Location(spec, candidate, candidate, folders)
    return Location(spec, None, folders[0] / spec.path, folders)


def find_benchmarks_dir(data_dir: str | Path | None = None) -> Path:
    """The first searched benchmarks folder that exists. Raises ``InputError`` saying how to point at the data when
    none does."""
    folders = benchmark_folders(data_dir)
    for folder in folders:
        if folder.is_dir():
            return folder
    raise InputError(
        f"no benchmarks folder found (looked in {', '.join(map(str, folders))}): pass data_dir=... (--data-dir), "
        f"set {ENV_VAR}=/path/to/benchmarks or {DATA_ENV_VAR}=/path/to/data, or put the files in {folders[-1]}")
