"""Do our ``adaptive`` and ``consol`` decide what the peers' published packages decide?

1. ``adaptive``: ``leader_confidence(v1, v2) >= threshold`` (our ``AdaptiveAllocator``) against
   ``BetaStoppingCriteria(threshold).should_stop(answers)`` of ``pip install AdaptiveConsistency`` (which
   integrates ``x^a (1-x)^b`` numerically), on every tally with ``0 <= v2 <= v1 <= --max-votes``, with and
   without a third answer, at several thresholds.
2. ``consol``: the size of the next batch (0: stop) that our ``ConsolAllocator`` asks for against
   ``ConfidentSolver._determine_trials`` with ``SprtConfidenceModel`` of ``pip install consol``, on the same
   tallies, for ConSol's defaults and other margins (``p1``), with ``max_trials`` 256 and 12.

Prints the largest differences and every tally where the decisions differ. Not part of the test suite: the
packages are not dependencies.

    python benchmarks/peer_check.py [--max-votes 40]
"""

from __future__ import annotations

import argparse
import sys

from dynscaling import leader_confidence
from dynscaling.allocators import ConsolAllocator
from dynscaling.votes import Tally

THRESHOLDS = (0.7, 0.8, 0.9, 0.95, 0.99, 0.999)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-votes", type=int, default=40)
    args = parser.parse_args()
    try:
        from adaptive_consistency import BetaStoppingCriteria
        from consol.confidence_models import SprtConfidenceModel
        from consol.confident_solver import ConfidentSolver
    except ImportError as error:
        sys.exit(f"needs the published packages: pip install AdaptiveConsistency consol ({error})")
    tallies = [(v1, v2, v3) for v1 in range(1, args.max_votes + 1) for v2 in range(v1 + 1)
               for v3 in sorted({0, v2 // 2})]
    worst = (0.0, (0, 0, 0))
    disagreements: list[str] = []
    for v1, v2, v3 in tallies:
        answers = ["a"] * v1 + ["b"] * v2 + ["c"] * v3
        theirs = BetaStoppingCriteria().should_stop(answers)["prob"]
        ours = leader_confidence(v1, v2)
        if abs(theirs - ours) > worst[0]:
            worst = (abs(theirs - ours), (v1, v2, v3))
        for threshold in THRESHOLDS:
            if (theirs >= threshold) != (ours >= threshold):
                disagreements.append(f"  ({v1}, {v2}, {v3}) at {threshold}: theirs {theirs!r}, ours {ours!r}")
    print(f"{len(tallies)} tallies (top votes v1 <= {args.max_votes}, with and without a third answer) x "
          f"{len(THRESHOLDS)} thresholds {THRESHOLDS}")
    print(f"largest |their confidence - ours|: {worst[0]:.3g} at {worst[1]}")
    print(f"decisions that differ: {len(disagreements)}")
    print("\n".join(disagreements))
    # Abstentions: the package counts whatever it is given, so a None answer would vote (we never let it).
    with_none = BetaStoppingCriteria().should_stop([None, None, None, "a", "a"])
    print(f"their rule on [None, None, None, 'a', 'a']: most common {with_none['most_common']!r}, "
          f"prob {with_none['prob']:.4f}; ours with the Nones abstaining: (2, 0) -> {leader_confidence(2, 0):.4f}")

    check_consol(tallies, SprtConfidenceModel, ConfidentSolver)


def check_consol(tallies: list[tuple[int, int, int]], model_type: type, solver_type: type) -> None:
    class Theirs:  # just what ConfidentSolver._determine_trials reads from its instance
        def __init__(self, p1: float) -> None:
            self.confidence_model = model_type(p1=p1)

    checked, differ = 0, []
    for p1 in (0.5001, 0.5002, 0.50007, 0.50003, 0.6):
        theirs = Theirs(p1)
        for max_trials in (256, 12):
            for v1, v2, v3 in [(0, 0, 0), *tallies]:
                votes = v1 + v2 + v3
                if votes > max_trials:
                    continue
                expected = solver_type._determine_trials(theirs, v1, v2, max_trials, votes)
                tally = Tally()
                for cls, count in enumerate((v1, v2, v3)):
                    for _ in range(count):
                        tally.add(cls)
                ours = ConsolAllocator(p1=p1, max_trials=max_trials)._more_votes(tally)
                checked += 1
                if ours != expected:
                    differ.append(f"  p1={p1} max_trials={max_trials} ({v1}, {v2}, {v3}): theirs {expected}, "
                                  f"ours {ours}")
    print(f"consol: {checked} (tally, p1, max_trials) cases; next batch sizes that differ: {len(differ)}")
    print("\n".join(differ[:20]))


if __name__ == "__main__":
    main()
