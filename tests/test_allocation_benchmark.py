"""benchmarks/allocation.py: the curve arithmetic pinned on hand-made points, and a whole quick run on a small pool
written here (the shared pools are too big for the suite)."""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark_scripts import BENCHMARKS, load_benchmark

SCRIPT = BENCHMARKS / "allocation.py"
allocation = load_benchmark("allocation")
Point = allocation.Point


def curve(*points: tuple[list[float], list[float]]) -> list:
    return [Point(f"p{i}", list(spends), list(accuracies)) for i, (spends, accuracies) in enumerate(points)]


class TestSpendToReach:
    def test_it_interpolates_between_the_points_either_side_of_the_target(self) -> None:
        points = curve(([1.0], [0.60]), ([2.0], [0.70]), ([4.0], [0.80]))
        assert allocation.spend_to_reach(points, 0.75) == pytest.approx(3.0)  # halfway from 2 to 4

    def test_the_first_crossing_counts_even_if_the_curve_dips_later(self) -> None:
        points = curve(([3.0], [0.9]), ([1.0], [0.5]), ([5.0], [0.7]), ([2.0], [0.8]))
        assert allocation.spend_to_reach(points, 0.65) == pytest.approx(1.5)

    def test_a_first_point_above_the_target_is_its_spend_and_a_curve_below_never_reaches(self) -> None:
        assert allocation.spend_to_reach(curve(([1.2], [0.9]), ([2.0], [0.95])), 0.8) == pytest.approx(1.2)
        assert allocation.spend_to_reach(curve(([1.0], [0.5]), ([2.0], [0.6])), 0.8) is None


class TestAtSpend:
    def test_each_seed_is_interpolated_on_its_own_spends(self) -> None:
        points = curve(([1.0, 1.2], [0.5, 0.6]), ([3.0, 2.2], [0.9, 0.7]))
        assert allocation.at_spend(points, 0, 2.0) == pytest.approx(0.7)  # seed 0: halfway 1 -> 3
        assert allocation.at_spend(points, 1, 2.0) == pytest.approx(0.68)  # seed 1: 0.8 of the way 1.2 -> 2.2

    def test_below_the_smallest_spend_it_is_undefined_above_the_largest_it_stays_flat(self) -> None:
        points = curve(([2.0], [0.6]), ([3.0], [0.8]))
        assert allocation.at_spend(points, 0, 1.5) is None
        assert allocation.at_spend(points, 0, 8.0) == pytest.approx(0.8)

    def test_points_at_the_same_spend_are_averaged(self) -> None:
        points = curve(([2.0], [0.6]), ([2.0], [0.8]), ([4.0], [1.0]))
        assert allocation.at_spend(points, 0, 2.0) == pytest.approx(0.7)


class TestReachDifference:
    @staticmethod
    def curves(default_shift: float) -> dict[str, list]:
        """Three seeds; SC reaches 0.80 over the whole pool, so the target is 0.795; the default's curve is the
        peer's moved ``default_shift`` samples/q to the right on every seed."""
        peer = curve(([1.0] * 3, [0.70, 0.72, 0.68]), ([3.0] * 3, [0.80, 0.81, 0.79]), ([5.0] * 3, [0.81] * 3))
        default = [Point(p.label, [x + default_shift for x in p.spends], list(p.accuracies)) for p in peer]
        sc = curve(([1.0] * 3, [0.6] * 3), ([8.0] * 3, [0.80] * 3))
        return {"sc": sc, "default": default, "consol": peer}

    def test_a_default_ahead_on_every_seed_is_ahead_in_every_resample(self) -> None:
        low, high, share = allocation.reach_difference(self.curves(-0.5), "default", "consol", 3, resamples=200)
        assert low == pytest.approx(-0.5) and high == pytest.approx(-0.5) and share == 1.0

    def test_a_default_behind_on_every_seed_never_needs_no_more(self) -> None:
        low, high, share = allocation.reach_difference(self.curves(0.25), "default", "consol", 3, resamples=200)
        assert low == pytest.approx(0.25) and high == pytest.approx(0.25) and share == 0.0

    def test_the_interval_is_wide_when_the_seeds_disagree(self) -> None:
        curves = self.curves(0.0)
        # seed 0: the default reaches the target a whole sample later; seeds 1 and 2: half a sample sooner
        curves["default"][1] = Point("p1", [4.0, 2.5, 2.5], [0.80, 0.81, 0.79])
        low, high, share = allocation.reach_difference(curves, "default", "consol", 3, resamples=500)
        assert low < 0 < high and 0.0 < share < 1.0

    def test_analyse_names_the_peer_that_needs_the_fewest(self) -> None:
        curves = {**self.curves(-0.5), "adaptive": self.curves(1.0)["default"]}
        summary = allocation.analyse("p", 10, 8, curves, 3)
        versus = summary["reach_vs_best_peer"]
        assert versus["peer"] == "consol" and versus["difference"] == pytest.approx(-0.5)
        assert versus["share_not_more"] == 1.0


def test_the_sprt_margin_grid_gives_consol_that_margin() -> None:
    from dynscaling.allocators.stopping import sprt_decides

    for margin in (1, 2, 3, 5, 12):
        p1 = allocation.consol_p1(margin)
        assert sprt_decides(margin, 0, p1=p1) and not sprt_decides(margin - 1, 0, p1=p1)
    assert allocation.consol_p1(3) == pytest.approx(0.5001, abs=0.00004)  # ConSol's default stops 3 ahead


def write_pool(path: Path, questions: int = 24, samples: int = 6) -> None:
    rng = random.Random(7)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for i in range(questions):
            top = rng.uniform(0.3, 0.95)
            answers = ["7" if rng.random() < top else str(rng.randint(1, 4)) for _ in range(samples)]
            record = {"id": str(i), "question": f"question {i}", "gold": "7", "answer_type": "number",
                      "samples": [{"text": f"so {a}", "answer": a} for a in answers]}
            handle.write(json.dumps(record) + "\n")


def test_a_quick_run_writes_the_table_and_the_json_for_every_method(tmp_path: Path) -> None:
    pool = tmp_path / "tiny_x6.jsonl.gz"
    write_pool(pool)
    out = tmp_path / "results"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--pool", str(pool), "--out", str(out)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    report = (out / "allocation.md").read_text()
    record = json.loads((out / "allocation.json").read_text())
    assert record["seeds"] == 3 and record["quick"] is True
    [summary] = record["pools"]
    methods = {"sc", "default", "blend-asc", "oracle", "esc", "adaptive", "consol", "ppr"}
    assert set(summary["curves"]) == methods == set(summary["samples_to_target"])
    assert sorted(summary["equal_spend"]) == ["1.5", "2", "3", "4", "6"]  # 8 is past the pool's 6 samples
    assert all("best_peer" in entry for entry in summary["equal_spend"].values())
    # SC's curve: whole budgets up to the pool and 1.5; its last point is the whole pool.
    assert [p["label"] for p in summary["curves"]["sc"]][-1] == "budget=6"
    assert summary["ratio_to_sc"]["sc"] == pytest.approx(1.0)
    for method in methods:
        assert method in report
    assert "default - best peer" in report and done.stdout.startswith("# Allocation at equal spend")
    assert (out / "allocation.png").read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in (out / "allocation.svg").read_bytes()[:2000]
    # --replot draws the same figure from the saved JSON, without running anything
    again = tmp_path / "replot"
    redone = subprocess.run([sys.executable, str(SCRIPT), "--replot", str(out / "allocation.json"), "--out",
                             str(again)], capture_output=True, text=True, timeout=120, check=False)
    assert redone.returncode == 0, redone.stderr
    assert (again / "allocation.png").read_bytes() == (out / "allocation.png").read_bytes()
    assert "paired bootstrap over seeds" in report and "peer" in summary["reach_vs_best_peer"]
    # --reanalyse writes the same tables and JSON from the saved curves, replaying nothing
    redone = subprocess.run([sys.executable, str(SCRIPT), "--reanalyse", str(out / "allocation.json"), "--out",
                             str(again)], capture_output=True, text=True, timeout=120, check=False)
    assert redone.returncode == 0, redone.stderr
    assert (again / "allocation.md").read_text().splitlines()[3:] == report.splitlines()[3:]
    assert json.loads((again / "allocation.json").read_text())["pools"] == record["pools"]


def test_a_subset_run_replays_the_same_seeded_questions_and_says_so(tmp_path: Path) -> None:
    pool = tmp_path / "tiny_x6.jsonl.gz"
    write_pool(pool)
    runs = []
    for out in (tmp_path / "a", tmp_path / "b"):
        done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--seeds", "2", "--pool", str(pool),
                               "--questions", "10", "--out", str(out)],
                              capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr
        runs.append(json.loads((out / "allocation.json").read_text()))
    [summary] = runs[0]["pools"]
    assert summary["pool"] == "tiny_x6_sub10" and summary["questions"] == 10
    assert "--questions 10" in runs[0]["command"] and "--questions 10" in (tmp_path / "a" / "allocation.md").read_text()
    assert runs[0]["pools"] == runs[1]["pools"]  # the same subset, the same curves
    picked = allocation.subset(allocation.load_pool(pool), 10, 1)
    assert [e.question.id for e in picked.entries] == sorted((e.question.id for e in picked.entries), key=int)
    assert len({e.question.id for e in picked.entries}) == 10
    assert allocation.subset(allocation.load_pool(pool), 10, 2).entries != picked.entries  # the seed matters
    refused = subprocess.run([sys.executable, str(SCRIPT), "--pool", str(pool), "--questions", "0", "--out",
                              str(tmp_path / "c")], capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode == 1 and "--questions must be in 1..24" in refused.stderr
    assert refused.stderr.strip().splitlines() == [refused.stderr.strip()]


def test_a_mixed_run_replays_the_pools_as_one_batch_with_ids_kept_apart(tmp_path: Path) -> None:
    first, second = tmp_path / "easy_x6.jsonl.gz", tmp_path / "small_x4.jsonl.gz"
    write_pool(first, questions=12)
    write_pool(second, questions=8, samples=4)  # the same ids 0..7 as the first pool's, and a smaller pool
    batch = allocation.mixed([allocation.load_pool(first), allocation.load_pool(second)])
    ids = [e.question.id for e in batch.entries]
    assert ids[:2] == ["easy_x6/0", "easy_x6/1"] and ids[12:14] == ["small_x4/0", "small_x4/1"]
    assert len(set(ids)) == 20 and batch.max_samples == 6 and batch.name == "mix_easy_x6+small_x4"
    assert [e.answers for e in batch.entries[12:]] == [e.answers for e in allocation.load_pool(second).entries]
    out = tmp_path / "mixed"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--seeds", "2", "--mix", "--pool", str(first),
                           "--pool", str(second), "--questions", "6", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    [summary] = json.loads((out / "allocation.json").read_text())["pools"]
    assert summary["pool"] == "mix_easy_x6_sub6+small_x4_sub6" and summary["questions"] == 12
    alone = subprocess.run([sys.executable, str(SCRIPT), "--mix", "--pool", str(first), "--out", str(out)],
                           capture_output=True, text=True, timeout=120, check=False)
    assert alone.returncode == 1 and alone.stderr.strip() == "--mix needs at least two --pool"


def test_an_unknown_pool_name_is_a_one_line_error(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--pool", "no-such-pool", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0 and "no pool 'no-such-pool'" in done.stderr
    assert "Traceback" not in done.stderr


def assert_one_line_error(flag: str, saved: Path, says: str, not_written: Path) -> None:
    """``allocation.py flag saved`` exits 1 with one line on stderr that names the file and says ``says``, and
    writes nothing."""
    done = subprocess.run([sys.executable, str(SCRIPT), flag, str(saved), "--out", str(not_written.parent)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith(str(saved)) and says in done.stderr
    assert not not_written.exists()


@pytest.mark.parametrize(("curves", "says"), [
    ({}, "pools[0] (p) has no 'sc' curve"),
    ({"sc": [{"label": "b", "spends": [1.0, 1.0], "accuracies": [0.5, 0.5]}], "default": [{"label": "b"}]},
     "curve point default b does not hold one spend and one accuracy per seed (2)"),
    ({"sc": [{"label": "b", "spends": [1.0], "accuracies": [0.5]}], "default": [{"label": "b", "x": 1}]},
     "a curve point is not label/spends/accuracies"),
])
def test_reanalyse_of_a_file_without_curves_is_a_one_line_error_naming_it(tmp_path: Path, curves: dict,
                                                                         says: str) -> None:
    saved = tmp_path / "allocation.json"
    saved.write_text(json.dumps({"default": "x", "seeds": 2, "pools": [
        {"pool": "p", "questions": 1, "pool_size": 4, "target": 0.5, "curves": curves}]}))
    assert_one_line_error("--reanalyse", saved, says, tmp_path / "out" / "allocation.md")


@pytest.mark.parametrize(("content", "says"), [
    (None, "cannot read it"),
    ("{", ":1: not JSON"),
    ("[]", "expected the JSON object"),
    ('{"pools": []}', "missing field 'default'"),
    ('{"default": "x", "seeds": 2, "pools": []}', "holds no pool"),
    ('{"default": "x", "seeds": 2, "pools": [{"pool": "p"}]}', "pools[0] has no field 'questions'"),
])
def test_replot_of_a_bad_file_is_a_one_line_error_naming_it(tmp_path: Path, content: str | None, says: str) -> None:
    saved = tmp_path / "allocation.json"
    if content is not None:
        saved.write_text(content)
    assert_one_line_error("--replot", saved, says, tmp_path / "out" / "allocation.png")
