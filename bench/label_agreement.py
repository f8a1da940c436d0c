"""How far two readers agree on the blind set's labels, and where the detector stands beside them.

bench/attractor_eval/second-labels.json holds a second reader's labels of 136 of the blind set's
conversations: the third and fourth rounds (64, in dev) and the fifth (72, the test half). The second
reader (a helper) got the conversations without their labels, ids shuffled, and the same attractor
definitions the writers had; it never saw the writers' labels, the detector or its themes
(bench/attractor_eval/README.md has the brief). Writers and second reader are helpers of one kind (the
same model family), so their agreement is what two careful readers of one school reach, an upper bound
for readers of different ones. Per half, the script prints:

- the second reader against the writers: the share given the same class (a family, topic_from_start
  or none) and, over the writers' drifts, the share the reader put in the same family within ±2 messages;
- the detector (`duologue analyze`, as `python bench/attractor_eval.py` runs it) against each reader:
  the same class, and the share of that reader's drifts found with their family within ±2.

A detector that agrees with the writers less than the two readers agree with each other is below what a
reader does, not held back by loose labels.

    python bench/label_agreement.py
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from attractor_eval import EVAL, Case, expected, find, got, load_half  # noqa: E402

SECOND = EVAL / "second-labels.json"


def _case_with(case: Case, label: dict) -> Case:
    return Case(
        case.id, case.speakers, case.contents, label.get("attractor"), label.get("onset"), label.get("end_state")
    )


def _against(reference: list[Case], calls: list[tuple[str, str | None, int | None]]) -> dict:
    """One labeller's calls (class, family, onset) per conversation against a reference's labels: the same
    class, and over the reference's drifts, how many it puts in that family within ±2 (and the errors' median)."""
    pairs = list(zip(reference, calls, strict=True))
    errors = [abs(onset - c.onset) for c, (_, fam, onset) in pairs if c.attractor and fam == c.attractor and onset]
    return {
        "same_class": sum(1 for c, (cls, _, _) in pairs if expected(c) == cls),
        "drifts": sum(1 for c in reference if c.attractor),
        "within2": sum(1 for e in errors if e <= 2),
        "median": statistics.median(errors),
    }


def _compare(writers: list[Case], readers: list[Case], founds: list) -> dict:
    detector = [(got(f), f.family, f.onset) for f in founds]
    return {
        "conversations": len(writers),
        "second_vs_writers": _against(writers, [(expected(r), r.attractor, r.onset) for r in readers]),
        "detector_vs_writers": _against(writers, detector),
        "detector_vs_second": _against(readers, detector),
    }


def measure() -> dict:
    """{half: comparison} over the conversations of each half that the second reader labelled."""
    seconds = {e["id"]: e["label"] for e in json.loads(SECOND.read_text(encoding="utf-8"))}
    out = {}
    found_ids: set[str] = set()
    for half in ("dev", "test"):
        cases = [c for c in load_half(EVAL / half) if c.id in seconds]
        found_ids |= {c.id for c in cases}
        if cases:
            readers = [_case_with(c, seconds[c.id]) for c in cases]
            out[half] = _compare(cases, readers, [find(c) for c in cases])
    missing = sorted(set(seconds) - found_ids)
    if missing:
        raise SystemExit(f"label_agreement: {len(missing)} labelled conversations are not in the set: {missing[:3]}")
    return out


def main() -> None:
    for half, result in measure().items():
        n = result["conversations"]
        rounds = "rounds 3 and 4" if half == "dev" else "round 5"
        print(f"{half}: {n} conversations labelled by a second reader ({rounds})")
        print(f"  {'':24} {'same class':>11} {'drifts within ±2':>17} {'median onset err':>17}")
        for key, name in (
            ("second_vs_writers", "second reader ~ writers"),
            ("detector_vs_writers", "detector ~ writers"),
            ("detector_vs_second", "detector ~ second reader"),
        ):
            r = result[key]
            share = f"{r['within2']}/{r['drifts']} {r['within2'] / r['drifts']:.2f}"
            print(f"  {name:24} {r['same_class']:>6}/{n:<4} {share:>17} {r['median']:>17g}")


if __name__ == "__main__":
    main()
