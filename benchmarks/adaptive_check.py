"""Does our ``adaptive`` stop where the published Adaptive-Consistency package stops?

Compares ``leader_confidence(v1, v2) >= threshold`` (our ``AdaptiveAllocator``) with the package's
``BetaStoppingCriteria(threshold).should_stop(answers)`` (``pip install AdaptiveConsistency``, which integrates
``x^a (1-x)^b`` numerically) on every tally with ``0 <= v2 <= v1 <= --max-votes``, plus a third answer with fewer
votes, for several thresholds. Prints the largest difference between the two confidences and every tally where the
decisions differ. Not part of the test suite: the package is not a dependency.

    python benchmarks/adaptive_check.py [--max-votes 40]
"""

from __future__ import annotations

import argparse
import sys

from dynscaling import leader_confidence

THRESHOLDS = (0.7, 0.8, 0.9, 0.95, 0.99, 0.999)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-votes", type=int, default=40)
    args = parser.parse_args()
    try:
        from adaptive_consistency import BetaStoppingCriteria
    except ImportError:
        sys.exit("needs the published package: pip install AdaptiveConsistency")
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


if __name__ == "__main__":
    main()
