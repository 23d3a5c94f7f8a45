"""Mutation testing of the core, one module at a time, with mutmut: how many small deliberate bugs the suite catches.

    pip install -e '.[mutation]'                          # mutmut; or: pip install 'mutmut>=3.8'
    nice -n 10 python benchmarks/mutation.py                # votes budget answers samplers (the default)
    nice -n 10 python benchmarks/mutation.py --all          # all eight core modules
    nice -n 10 python benchmarks/mutation.py engine --jobs 2 --survivors
    nice -n 10 python benchmarks/mutation.py allocators      # a package: every file in it, scored per file too
    nice -n 10 python benchmarks/mutation.py allocators/bandit   # one file of a package, with the package's tests

Each module runs in its own scratch copy of the project (``out/mutation/<module>/``), with a mutmut configuration
that mutates only that module and selects only the test files that exercise it; within those, mutmut runs for
each mutant just the tests that reached the mutated function (its stats phase records which), fastest first,
stopping at the first failure. So one module takes minutes, not the hours of the whole suite per mutant. It is
not part of CI.

The score of a module is killed / (total - equivalent). Timeouts count as killed (the mutant made a test hang);
they are also reported apart, since a limit reached on a loaded machine is not proof of a kill. A package
(``allocators``) is scored per file and as a whole.
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
#: Checked against the tests with coverage per test (which files reach which module); only files whose tests reach
#: the module are listed, and mutmut then runs, per mutant, only the tests that reached the mutated function.
TESTS: dict[str, list[str]] = {
    "votes": ["test_votes.py", "test_claims.py", "test_allocators.py"],
    "budget": ["test_budget.py", "test_claims.py", "test_engine.py", "test_live_driver.py"],
    "answers": ["test_answers.py", "test_answer_spans.py", "test_pools.py"],
    "samplers": ["test_samplers.py", "test_prompts.py", "test_engine.py", "test_live_driver.py",
                 "test_sampler_messages.py"],
    "allocators": ["test_allocators.py", "test_bayes_allocator.py", "test_stopping.py", "test_claims.py",
                   "test_strategies.py", "test_engine.py", "test_allocator_rules.py", "test_length_groups.py",
                   "test_bayes_fast_paths.py", "test_bayes_contract.py", "test_bandit_reference.py",
                   "test_stopping_reference.py", "test_blend_reference.py", "test_baselines_contract.py",
                   "test_bayes_reference.py"],
    "engine": ["test_engine.py", "test_claims.py", "test_live_driver.py", "test_allocators.py", "test_replay.py",
               "test_bayes_allocator.py", "test_stopping.py", "test_engine_results.py"],
    "journal": ["test_live_driver.py", "test_claims.py", "test_journal_safety.py", "test_journal_log.py"],
    "strategies": ["test_strategies.py", "test_engine.py", "test_allocators.py", "test_strategy_specs.py"],
}
DEFAULT = ["votes", "budget", "answers", "samplers"]  # the four not being rewritten while this was set up
SOURCE = ROOT / "src" / "dynscaling"

KILLED = {1, 3}  # pytest: tests failed / internal error
TIMEOUT = {-24, 24, 152, 255, 36}
SURVIVED = {0}


def package_of(target: str) -> str:
    """The TESTS key of a target: ``allocators/bandit`` -> ``allocators``; a module is its own key."""
    return target.split("/", 1)[0]


def is_package(target: str) -> bool:
    return (SOURCE / target).is_dir()


def mutated_files(target: str) -> list[str]:
    """The source files a target mutates, relative to src/dynscaling, without the .py (``allocators/bandit``)."""
    if is_package(target):
        return sorted(p.relative_to(SOURCE).with_suffix("").as_posix() for p in (SOURCE / target).glob("*.py")
                      if p.name != "__init__.py")
    return [target]


def check_target(target: str) -> str | None:
    """Why a target cannot be mutated, or None."""
    if package_of(target) not in TESTS:
        return f"not a core module: {target} (expected some of {', '.join(TESTS)}, or package/file)"
    if not (is_package(target) or (SOURCE / f"{target}.py").is_file()):
        return f"no such source file: src/dynscaling/{target}.py"
    return None


def test_files(target: str) -> list[str]:
    """The target's test files that exist in this checkout (a listed file may not have been merged yet)."""
    return [name for name in TESTS[package_of(target)] if (ROOT / "tests" / name).is_file()]


def mutmut_config(target: str) -> str:
    tests = ", ".join(f'"tests/{name}"' for name in test_files(target))
    only = f"src/dynscaling/{target}/*.py" if is_package(target) else f"src/dynscaling/{target}.py"
    return f"""

[tool.mutmut]
source_paths = ["src/dynscaling"]
only_mutate = ["{only}"]
pytest_add_cli_args = ["-q", "-p", "no:cacheprovider"]
pytest_add_cli_args_test_selection = [{tests}]
# stats, clean run and mutants are separate pytest sessions: a fork server keeps them out of one process
process_isolation = "forkserver"
# mutmut 3.8 stops a mutant after (estimated test time + constant) x multiplier seconds of wall time (twice that
# in CPU time). Its default (15 x (t + 1 s)) turns a slow run on a loaded machine into a "timeout", which counts
# as a kill; 10 x (t + 20 s), at least 200 s for tests that take a second or two, is reached only by real hangs,
# and a hang no longer holds a worker for half an hour (30 x (t + 60 s) did)
timeout_multiplier = 10.0
timeout_constant = 20.0
use_git_change_detection = false
"""


def prepare(target: str, work: Path) -> None:
    """A fresh copy of src/, tests/ and pyproject.toml with this module's mutmut configuration."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    shutil.copytree(ROOT / "src", work / "src", ignore=ignore)
    shutil.copytree(ROOT / "tests", work / "tests", ignore=ignore)
    (work / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text() + mutmut_config(target))


def equivalents() -> dict[str, str]:
    """Mutant name -> why it is equivalent, from the reviewed list."""
    found: dict[str, str] = {}
    if EQUIVALENTS.is_file():
        for line in EQUIVALENTS.read_text(encoding="utf-8").splitlines():
            match = re.match(r"^- `([^`]+__mutmut_\d+)`:\s*(.+)$", line)
            if match:
                found[match.group(1)] = match.group(2)
    return found


def results(target: str, work: Path) -> dict[str, dict[str, int | None]]:
    """File (``allocators/bandit``) -> mutant name -> mutmut's exit code, for every file the target mutated."""
    mutants = work / "mutants" / "src" / "dynscaling"
    metas = {name: mutants / f"{name}.py.meta" for name in mutated_files(target)}
    if is_package(target):  # a file mutmut found mutants in that this list missed (an __init__ with code) counts too
        for meta in sorted((mutants / target).glob("*.py.meta")):
            metas.setdefault(meta.relative_to(mutants).as_posix().removesuffix(".py.meta"), meta)
    found = {name: json.loads(meta.read_text())["exit_code_by_key"] for name, meta in metas.items() if meta.is_file()}
    if not found:
        raise SystemExit(f"error: mutmut wrote no results for {target} (no .meta under {mutants}); "
                         f"see {work}/mutmut.log")
    return found


def score(name: str, codes: dict[str, int | None], known: dict[str, str]) -> dict[str, object]:
    status: Counter[str] = Counter()
    survivors = []
    for mutant, code in codes.items():
        if code in KILLED:
            status["killed"] += 1
        elif code in TIMEOUT:
            status["timeout"] += 1
        elif code is None:
            status["not checked"] += 1
        elif mutant in known:  # reviewed: cannot change behaviour, whether or not a test reached it
            status["equivalent"] += 1
        elif code in SURVIVED:
            status["survived"] += 1
            survivors.append(mutant)
        else:
            status["other"] += 1  # no tests reached it (exit 5, 33) or a crash: counts as not killed
            survivors.append(mutant)
    total = len(codes)
    killed = status["killed"] + status["timeout"]
    denominator = total - status["equivalent"] - status["not checked"]  # an interrupted run scores what it checked
    return {"module": name, "total": total, "killed": killed, "timeout": status["timeout"],
            "equivalent": status["equivalent"], "survived": status["survived"], "other": status["other"],
            "not_checked": status["not checked"], "score": round(killed / denominator, 4) if denominator else None,
            "survivors": sorted(survivors)}


def score_target(target: str, work: Path, known: dict[str, str]) -> list[dict[str, object]]:
    """The target's score, then (for a package) one per file."""
    by_file = results(target, work)
    every = {mutant: code for codes in by_file.values() for mutant, code in codes.items()}
    whole = score(target, every, known)
    if not is_package(target):
        return [whole]
    return [whole] + [score(name, codes, known) for name, codes in sorted(by_file.items())]


def run_target(target: str, work: Path, jobs: int) -> float:
    """Run mutmut on the target in a fresh scratch copy; the minutes it took."""
    prepare(target, work)
    started = time.monotonic()
    with (work / "mutmut.log").open("w") as log:
        completed = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs)],
                                   cwd=work, env=_mutmut_env(work), stdout=log, stderr=subprocess.STDOUT)
    if completed.returncode not in (0, 1):  # mutmut exits 1 when mutants survive
        raise SystemExit(f"error: mutmut failed on {target} (exit {completed.returncode}); see {work}/mutmut.log")
    return (time.monotonic() - started) / 60


def show_survivors(summary: dict[str, object], work: Path) -> None:
    for name in summary["survivors"]:  # type: ignore[union-attr]
        shown = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=work, env=_mutmut_env(work),
                               capture_output=True, text=True)
        print(f"--- {name}\n{shown.stdout.strip()}\n")


def recheck(summary: dict[str, object], work: Path, tests: list[str]) -> list[str]:
    """The survivors of a finished run that ``tests`` (files added since) kill: each test file is copied into
    mutmut's trampolined copy and run with ``MUTANT_UNDER_TEST`` set to the mutant, as mutmut itself runs one,
    after checking that the files pass with no mutant active. Cheaper than a second run of the whole target."""
    mutants = work / "mutants"
    for name in tests:
        shutil.copy2(ROOT / "tests" / name, mutants / "tests" / name)
    env = {**_mutmut_env(work), "PYTHONPATH": str(mutants / "src")}
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "no:randomly",
               *(f"tests/{name}" for name in tests)]

    def fails(mutant: str) -> bool:
        completed = subprocess.run(command, cwd=mutants, env={**env, "MUTANT_UNDER_TEST": mutant},
                                   capture_output=True, text=True, timeout=600)
        return completed.returncode != 0

    if fails(""):
        raise SystemExit(f"error: {', '.join(tests)} fail with no mutant active in {mutants}")
    killed = []
    for mutant in summary["survivors"]:  # type: ignore[union-attr]
        try:
            dead = fails(mutant)
        except subprocess.TimeoutExpired:
            dead = True  # a hang, as mutmut counts it
        if dead:
            killed.append(mutant)
    return killed


def _mutmut_env(work: Path) -> dict[str, str]:
    # the conftest's hypothesis profile for mutation runs; no ../shared, so no test depends on it
    env = {**os.environ, "DYNSCALING_MUTATION": "1", "DYNSCALING_DATA": str(work / "no-shared-data")}
    env.pop("PYTHONPATH", None)
    return env


def _line(s: dict[str, object], minutes: float | None) -> str:
    return (f"  {s['module']}: {s['killed']} killed of {s['total']} ({s['timeout']} of them timeouts; "
            f"{s['equivalent']} equivalent, {s['survived']} survived, {s['other']} other, "
            f"{s['not_checked']} not checked), score {s['score']}" + (f", {minutes:.1f} min" if minutes else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*",
                        help=f"core modules to mutate: {', '.join(TESTS)}; or a package's file (allocators/bandit)")
    parser.add_argument("--all", action="store_true", help="all eight core modules")
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--survivors", action="store_true", help="print the diff of every unexplained survivor")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "mutation",
                        help="where the scratch copies and summary.json go (default out/mutation)")
    parser.add_argument("--report", action="store_true",
                        help="score the results already in out/mutation/ (of a finished or interrupted run)")
    parser.add_argument("--recheck", nargs="+", metavar="TEST_FILE", default=[],
                        help="with --report: which survivors these test files (in tests/) kill, mutant by mutant")
    args = parser.parse_args()
    if not args.report and not _importable("mutmut"):
        raise SystemExit("error: mutmut is not installed: pip install -e '.[mutation]'")
    targets = list(TESTS) if args.all else (args.modules or DEFAULT)
    problems = [problem for problem in map(check_target, targets) if problem]
    problems += [f"--recheck: no such test file: tests/{name}" for name in args.recheck
                 if not (ROOT / "tests" / name).is_file()]
    if problems:
        raise SystemExit(f"error: {problems[0]}")
    known = equivalents()
    summaries: list[dict[str, object]] = []
    for target in targets:
        work = args.out / target.replace("/", "-")
        minutes = None
        if not args.report:
            print(f"mutating {target} (tests: {', '.join(test_files(target))}) ...", flush=True)
            minutes = round(run_target(target, work, args.jobs), 1)
        scored = score_target(target, work, known)
        scored[0]["minutes"] = minutes
        for summary in scored:
            print(_line(summary, summary.get("minutes")), flush=True)  # type: ignore[arg-type]
        if args.recheck:
            killed = recheck(scored[0], work, args.recheck)
            scored[0]["killed_by_recheck"] = killed
            left = [m for m in scored[0]["survivors"] if m not in killed]  # type: ignore[union-attr]
            s = scored[0]
            checked = int(s["total"]) - int(s["equivalent"]) - int(s["not_checked"])  # type: ignore[call-overload]
            s["score_after_recheck"] = round((int(s["killed"]) + len(killed)) / max(1, checked), 4)  # type: ignore[call-overload]
            print(f"  recheck with {', '.join(args.recheck)}: kills {len(killed)} of {len(s['survivors'])} "  # type: ignore[arg-type]
                  f"survivors ({len(left)} left); score {s['score_after_recheck']:.1%}", flush=True)
            scored[0]["survivors"] = left
        if args.survivors:
            show_survivors(scored[0], work)  # the whole target's: a package's files hold the same survivors
        summaries.extend(scored)
    out = args.out / "summary.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summaries, indent=1) + "\n")
    print("\n| module | mutants | killed (timeouts) | equivalent | survived | score |\n|---|---|---|---|---|---|")
    for s in summaries:
        print(f"| {s['module']} | {s['total']} | {s['killed']} ({s['timeout']}) | {s['equivalent']} | "
              f"{int(s['survived']) + int(s['other'])} | {float(s['score'] or 0):.1%} |")  # type: ignore[call-overload]
    print(f"\nwritten: {out}")


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


if __name__ == "__main__":
    main()
