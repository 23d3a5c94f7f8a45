"""Mutation testing of the core, one module at a time, with mutmut: how many small deliberate bugs the suite catches.

    pip install -e '.[mutation]'                          # mutmut; or: pip install 'mutmut>=3.8'
    nice -n 10 python benchmarks/mutation.py                # votes budget answers samplers (the default)
    nice -n 10 python benchmarks/mutation.py --all          # all eight core modules
    nice -n 10 python benchmarks/mutation.py engine --jobs 2 --survivors

Each module runs in its own scratch copy of the project (``out/mutation/<module>/``), with a mutmut configuration
that mutates only that module and selects only the test files that exercise it; within those, mutmut runs for
each mutant just the tests that reached the mutated function (its stats phase records which), fastest first,
stopping at the first failure. So one module takes minutes, not the hours of the whole suite per mutant. It is
not part of CI.

The score of a module is killed / (total - equivalent). Timeouts count as killed (the mutant made a test hang).
A survivor is either killed by a new test or listed as equivalent, with one line of why, in
``benchmarks/mutation_equivalents.md`` (``- `mutant name`: why``). ``--survivors`` prints each survivor's diff.
The figures go in BENCHMARKS.md; ``out/mutation/summary.json`` keeps the last run's (``--out`` moves both).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = ROOT / "benchmarks" / "mutation_equivalents.md"

#: module -> the test files that exercise it in-process (HTTP-heavy suites add minutes per mutant, kill no more).
TESTS: dict[str, list[str]] = {
    "votes": ["test_votes.py", "test_claims.py", "test_allocators.py"],
    "budget": ["test_budget.py", "test_claims.py", "test_engine.py", "test_live_driver.py"],
    "answers": ["test_answers.py", "test_pools.py"],
    "samplers": ["test_samplers.py", "test_prompts.py", "test_engine.py", "test_live_driver.py"],
    "allocators": ["test_allocators.py", "test_claims.py", "test_engine.py"],
    "engine": ["test_engine.py", "test_claims.py", "test_live_driver.py", "test_allocators.py", "test_replay.py"],
    "journal": ["test_live_driver.py", "test_claims.py"],
    "strategies": ["test_strategies.py", "test_engine.py", "test_allocators.py"],
}
DEFAULT = ["votes", "budget", "answers", "samplers"]  # the four not being rewritten while this was set up

KILLED = {1, 3}  # pytest: tests failed / internal error
TIMEOUT = {-24, 24, 152, 255, 36}
SURVIVED = {0}


def mutmut_config(module: str) -> str:
    tests = ", ".join(f'"tests/{name}"' for name in TESTS[module])
    return f"""

[tool.mutmut]
source_paths = ["src/dynscaling"]
only_mutate = ["src/dynscaling/{module}.py"]
pytest_add_cli_args = ["-q", "-p", "no:cacheprovider"]
pytest_add_cli_args_test_selection = [{tests}]
# stats, clean run and mutants are separate pytest sessions: a fork server keeps them out of one process
process_isolation = "forkserver"
# mutmut's default limit (15 x the tests' time + 1 s) turns a slow run on a loaded machine into a "timeout",
# which would count as a kill; this limit only catches real hangs
timeout_multiplier = 30.0
timeout_constant = 60.0
use_git_change_detection = false
"""


def prepare(module: str, work: Path) -> None:
    """A fresh copy of src/, tests/ and pyproject.toml with this module's mutmut configuration."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    shutil.copytree(ROOT / "src", work / "src", ignore=ignore)
    shutil.copytree(ROOT / "tests", work / "tests", ignore=ignore)
    (work / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text() + mutmut_config(module))


def equivalents() -> dict[str, str]:
    """Mutant name -> why it is equivalent, from the reviewed list."""
    found: dict[str, str] = {}
    if EQUIVALENTS.is_file():
        for line in EQUIVALENTS.read_text(encoding="utf-8").splitlines():
            match = re.match(r"^- `([^`]+__mutmut_\d+)`:\s*(.+)$", line)
            if match:
                found[match.group(1)] = match.group(2)
    return found


def results(module: str, work: Path) -> dict[str, int | None]:
    meta = work / "mutants" / "src" / "dynscaling" / f"{module}.py.meta"
    if not meta.is_file():
        raise SystemExit(f"error: mutmut wrote no results for {module} ({meta} is missing); see {work}/mutmut.log")
    return json.loads(meta.read_text())["exit_code_by_key"]


def score(module: str, codes: dict[str, int | None], known: dict[str, str]) -> dict[str, object]:
    status: Counter[str] = Counter()
    survivors = []
    for name, code in codes.items():
        if code in KILLED:
            status["killed"] += 1
        elif code in TIMEOUT:
            status["timeout"] += 1
        elif code in SURVIVED:
            if name in known:
                status["equivalent"] += 1
            else:
                status["survived"] += 1
                survivors.append(name)
        elif code is None:
            status["not checked"] += 1
        else:
            status["other"] += 1  # no tests reached it (exit 5, 33) or a crash: counts as not killed
            survivors.append(name)
    total = len(codes)
    killed = status["killed"] + status["timeout"]
    denominator = total - status["equivalent"] - status["not checked"]  # an interrupted run scores what it checked
    return {"module": module, "total": total, "killed": killed, "equivalent": status["equivalent"],
            "survived": status["survived"], "other": status["other"], "not_checked": status["not checked"],
            "score": round(killed / denominator, 4) if denominator else None, "survivors": sorted(survivors)}


def run_module(module: str, work: Path, jobs: int, show_survivors: bool) -> dict[str, object]:
    prepare(module, work)
    env = {**os.environ, "DYNSCALING_MUTATION": "1", "DYNSCALING_DATA": str(work / "no-shared-data")}
    env.pop("PYTHONPATH", None)
    started = time.monotonic()
    with (work / "mutmut.log").open("w") as log:
        completed = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs)],
                                   cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    minutes = (time.monotonic() - started) / 60
    if completed.returncode not in (0, 1):  # mutmut exits 1 when mutants survive
        raise SystemExit(f"error: mutmut failed on {module} (exit {completed.returncode}); see {work}/mutmut.log")
    summary = score(module, results(module, work), equivalents())
    summary["minutes"] = round(minutes, 1)
    if show_survivors:
        for name in summary["survivors"]:  # type: ignore[union-attr]
            shown = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=work, env=env,
                                   capture_output=True, text=True)
            print(f"--- {name}\n{shown.stdout.strip()}\n")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help=f"core modules to mutate: {', '.join(TESTS)}")
    parser.add_argument("--all", action="store_true", help="all eight core modules")
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--survivors", action="store_true", help="print the diff of every unexplained survivor")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "mutation",
                        help="where the scratch copies and summary.json go (default out/mutation)")
    parser.add_argument("--report", action="store_true",
                        help="score the results already in out/mutation/ (of a finished or interrupted run)")
    args = parser.parse_args()
    if not _importable("mutmut"):
        raise SystemExit("error: mutmut is not installed: pip install -e '.[mutation]'")
    modules = list(TESTS) if args.all else (args.modules or DEFAULT)
    unknown = [m for m in modules if m not in TESTS]
    if unknown:
        raise SystemExit(f"error: not a core module: {', '.join(unknown)} (expected some of {', '.join(TESTS)})")
    summaries = []
    for module in modules:
        if not args.report:
            print(f"mutating {module} (tests: {', '.join(TESTS[module])}) ...", flush=True)
        work = args.out / module
        if args.report:
            summary = {**score(module, results(module, work), equivalents()), "minutes": None}
        else:
            summary = run_module(module, work, args.jobs, args.survivors)
        summaries.append(summary)
        print(f"  {module}: {summary['killed']} killed of {summary['total']} ({summary['equivalent']} equivalent, "
              f"{summary['survived']} survived, {summary['other']} other, {summary['not_checked']} not checked), "
              f"score {summary['score']}, {summary['minutes']} min", flush=True)
    out = args.out / "summary.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summaries, indent=1) + "\n")
    print("\n| module | mutants | killed | equivalent | survived | score |\n|---|---|---|---|---|---|")
    for s in summaries:
        print(f"| {s['module']} | {s['total']} | {s['killed']} | {s['equivalent']} | "
              f"{int(s['survived']) + int(s['other'])} | {float(s['score'] or 0):.1%} |")
    print(f"\nwritten: {out}")


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


if __name__ == "__main__":
    main()
