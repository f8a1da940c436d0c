"""How well `duologue analyze` finds attractors on conversations nobody tuned it for.

bench/attractor_eval/ holds 216 labelled conversations written blind, from the
attractor definitions only (its README is the brief the writers got), in five
rounds: `dev/` (144, the half the detector is tuned on: the first four rounds)
and `test/` (72, the half reported: the fifth round, by new writers). Each
file holds the messages and a label: the attractor family the conversation
drifts into and stays in (or none), the message where it begins (`onset`), and
the end state. The script runs the built-in analysis (loops, themes, attractor)
on each and prints, per half and per family:

- precision: of the conversations the analysis puts in the family, the share
  labelled so; recall: of those labelled so, the share it finds;
- onset error over the labelled drifts of the family: the median |found −
  labelled| over those found with the right family, and the share of all the
  family's drifts found with the right family within ±2 messages;
- beside the families, `topic_from_start` (an attractor the conversation began
  in, reported as its topic, not as a drift) and `on_task`/`none` (no
  attractor at all), counted the same way.

With `--real LABELS --corpus DIR` it does the same for imported real logs
(UniversalBackrooms): LABELS is a JSON list of {file, messages, attractor,
onset, end_state} (bench/attractor_eval/real-labels.json: 40 logs of
samhains/UniversalBackrooms labelled blind, see the README there), DIR the
folder holding the files (var/backrooms_logs of a clone; not part of this
repository). Messages are numbered as duologue imports them: the models' blocks
in file order from 1; a file whose count differs from the label's is skipped.
A rule end state labelled as the attractor (silence, verbatim) is a row of its
own. `--real-half dev|held|all` scores half of the real logs: sorted by file
name, those at even positions (0, 2, ...) are "dev", the half changes may be
tuned on, and those at odd positions "held", looked at only in aggregate.

    python bench/attractor_eval.py [--half dev|test|both] [--show] [--real LABELS --corpus DIR]
        [--real-half dev|held|all] [--set KEY=VALUE]

`--show` prints each conversation's label, what was found, and its theme strip;
`--set topic_register=none` scores a [detection.attractor] setting other than
its default.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
EVAL = HERE / "attractor_eval"
FAMILIES = ("spiritual_bliss", "mutual_praise", "farewell_spiral", "meta_loop")
OTHERS = ("topic_from_start", "none")
# duologue's theme (or family) ids -> the labels' family names; a rule theme keeps its id.
FAMILY_OF = {
    "bliss": "spiritual_bliss",
    "gratitude": "spiritual_bliss",
    "praise": "mutual_praise",
    "farewell": "farewell_spiral",
    "meta_loop": "meta_loop",
}


@dataclass
class Case:
    id: str
    speakers: list[str]
    contents: list[str]
    attractor: str | None
    onset: int | None
    end_state: str | None


@dataclass
class Found:
    family: str | None  # the attractor's family (see family_of), None without one
    onset: int | None
    topic: str | None  # the family the conversation started in, when reported as its topic
    end_state: str | None
    strip: str = ""


def load_half(folder: Path) -> list[Case]:
    out = []
    for f in sorted(folder.glob("*.json")):
        d = json.loads(f.read_text(encoding="utf-8"))
        lab = d["label"]
        out.append(
            Case(
                id=d.get("id", f.stem),
                speakers=[m["speaker"] for m in d["messages"]],
                contents=[m["content"] for m in d["messages"]],
                attractor=lab.get("attractor"),
                onset=lab.get("onset"),
                end_state=lab.get("end_state"),
            )
        )
    return out


REAL_HALVES = ("dev", "held", "all")


def split_real(entries: list[dict], half: str = "all") -> list[dict]:
    """The entries of one half of the real logs: sorted by file name, "dev" is those at even positions
    (0, 2, ...), "held" those at odd ones; "all" is every entry (in file-name order)."""
    if half not in REAL_HALVES:
        raise ValueError(f"half must be one of {', '.join(REAL_HALVES)}")
    ordered = sorted(entries, key=lambda e: e["file"])
    if half == "all":
        return ordered
    return ordered[0 if half == "dev" else 1 :: 2]


def load_real(labels: Path, corpus: Path, half: str = "all") -> list[Case]:
    from duologue.importers import read_runs

    out = []
    for entry in split_real(json.loads(labels.read_text(encoding="utf-8")), half):
        path = corpus / entry["file"]
        if not path.exists():
            print(f"attractor_eval: {path} is missing; skipped", file=sys.stderr)
            continue
        run = read_runs(path)[0]
        if entry.get("messages") not in (None, len(run.messages)):
            # The labels count the models' blocks in file order from 1, as duologue's import numbers them.
            print(
                f"attractor_eval: {entry['file']}: labelled with {entry['messages']} messages, "
                f"imported with {len(run.messages)}; skipped",
                file=sys.stderr,
            )
            continue
        out.append(
            Case(
                id=entry["file"],
                speakers=[m.speaker for m in run.messages],
                contents=[m.content for m in run.messages],
                attractor=entry.get("attractor"),
                onset=entry.get("onset"),
                end_state=entry.get("end_state"),
            )
        )
    return out


SETTINGS: dict[str, float | int | None] = {}  # [detection.attractor] settings other than the defaults (--set)


def find(case: Case) -> Found:
    from duologue.analysis import analyze
    from duologue.analysis.report import theme_strip
    from duologue.analysis.themes import AttractorParams

    a = analyze(case.speakers, case.contents, attractor=AttractorParams(**SETTINGS))
    at = a.attractor
    family = FAMILY_OF.get(at.theme, at.theme) if at else None
    start = getattr(a, "topic_from_start", None)
    topic = FAMILY_OF.get(start, start) if start else None
    return Found(family, at.onset if at else None, topic, a.end_state, theme_strip(a))


def expected(case: Case) -> str:
    if case.attractor:
        return case.attractor
    return "topic_from_start" if case.end_state == "topic_from_start" else "none"


def got(found: Found) -> str:
    if found.family:
        return found.family
    return "topic_from_start" if found.topic else "none"


def table(cases: Sequence[Case], founds: Sequence[Found]) -> list[dict]:
    rows = []
    # A rule end state labelled or found as the attractor (the real logs' "silence", "verbatim") is a row of its own.
    seen = {expected(c) for c in cases} | {got(f) for f in founds}
    rules = sorted(seen - set(FAMILIES) - set(OTHERS))
    for fam in (*FAMILIES, *rules, *OTHERS):
        tp = sum(1 for c, f in zip(cases, founds, strict=True) if expected(c) == fam and got(f) == fam)
        fp = sum(1 for c, f in zip(cases, founds, strict=True) if expected(c) != fam and got(f) == fam)
        fn = sum(1 for c, f in zip(cases, founds, strict=True) if expected(c) == fam and got(f) != fam)
        row: dict = {"family": fam, "labelled": tp + fn, "found": tp + fp, "tp": tp}
        row["precision"] = tp / (tp + fp) if tp + fp else None
        row["recall"] = tp / (tp + fn) if tp + fn else None
        if fam not in OTHERS:
            errors = [
                abs(f.onset - c.onset)
                for c, f in zip(cases, founds, strict=True)
                if c.attractor == fam and f.family == fam and f.onset is not None and c.onset is not None
            ]
            row["onset_median"] = statistics.median(errors) if errors else None
            row["within2"] = sum(1 for e in errors if e <= 2) / (tp + fn) if tp + fn else None
        rows.append(row)
    drifts = [(c, f) for c, f in zip(cases, founds, strict=True) if c.attractor]
    errors = [abs(f.onset - c.onset) for c, f in drifts if f.family == c.attractor and f.onset and c.onset]
    rows.append(
        {
            "family": "all drifts",
            "labelled": len(drifts),
            "found": sum(1 for c, f in drifts if f.family == c.attractor),
            "onset_median": statistics.median(errors) if errors else None,
            "within2": sum(1 for e in errors if e <= 2) / len(drifts) if drifts else None,
        }
    )
    return rows


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def print_table(name: str, rows: list[dict], seconds: float, messages: int) -> None:
    print(f"\n{name}: {messages} messages, {seconds:.1f} s")
    print(f"  {'family':18} {'labelled':>8} {'found':>6} {'precision':>9} {'recall':>6} {'onset err':>9} {'±2':>5}")
    for r in rows:
        med = r.get("onset_median")
        print(
            f"  {r['family']:18} {r['labelled']:>8} {r['found']:>6} {_pct(r.get('precision')):>9} "
            f"{_pct(r.get('recall')):>6} {'-' if med is None else f'{med:g}':>9} {_pct(r.get('within2')):>5}"
        )


def _real_name(half: str) -> str:
    return "real" if half == "all" else f"real-{half}"


def evaluate(cases: Sequence[Case]) -> tuple[list[Found], float]:
    t = time.perf_counter()
    founds = [find(c) for c in cases]
    return founds, time.perf_counter() - t


def show(cases: Sequence[Case], founds: Sequence[Found]) -> None:
    for c, f in zip(cases, founds, strict=True):
        right = expected(c) == got(f) and (not c.attractor or abs((f.onset or 0) - (c.onset or 0)) <= 2)
        print(
            f"{'ok' if right else 'XX'} {c.id}: label {expected(c)} @{c.onset} end {c.end_state}; "
            f"found {got(f)} @{f.onset} end {f.end_state}"
        )
        print(f"     {f.strip}")


def measure(half: str = "both", real: str | None = None, corpus: str | None = None, real_half: str = "all") -> dict:
    """Bench row 10: {half: rows} for the dev and test halves (and the real logs when given)."""
    out = {}
    sets = []
    if half in ("dev", "both"):
        sets.append(("dev", load_half(EVAL / "dev")))
    if half in ("test", "both"):
        sets.append(("test", load_half(EVAL / "test")))
    if real and corpus:
        sets.append((_real_name(real_half), load_real(Path(real), Path(corpus), real_half)))
    for name, cases in sets:
        founds, seconds = evaluate(cases)
        out[name] = {"rows": table(cases, founds), "seconds": seconds, "messages": sum(len(c.contents) for c in cases)}
    return out


def rows(result: dict) -> list[tuple[str, str, str]]:
    """(what, measured, target) lines for bench/run.py's table."""
    lines = []
    for name, r in result.items():
        for row in r["rows"]:
            if row["family"] not in FAMILIES and row["family"] != "all drifts":
                continue
            if row["family"] == "all drifts":
                lines.append(
                    (
                        f"{name} half: drifts found with their family, onset within ±2",
                        f"{row['found']}/{row['labelled']}, {_pct(row['within2'])}",
                        "≥ 0.80 within ±2" if name == "test" else "",
                    )
                )
                continue
            lines.append(
                (
                    f"{name} half, {row['family']}: precision / recall",
                    f"{_pct(row['precision'])} / {_pct(row['recall'])}",
                    "≥ 0.9 / ≥ 0.9" if name == "test" else "",
                )
            )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--half", choices=("dev", "test", "both"), default="both", help="which half to score")
    ap.add_argument("--show", action="store_true", help="each conversation: label, finding and theme strip")
    ap.add_argument("--real", type=Path, help="labels of real logs (JSON list of file, attractor, onset, end_state)")
    ap.add_argument("--corpus", type=Path, help="the folder holding the real logs named in --real")
    ap.add_argument(
        "--real-half",
        choices=REAL_HALVES,
        default="all",
        help="which real logs: sorted by file name, even positions are dev, odd ones held (default all)",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a [detection.attractor] setting instead of its default (e.g. topic_register=none); repeatable",
    )
    args = ap.parse_args()
    if bool(args.real) != bool(args.corpus):
        ap.error("--real and --corpus go together")
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            SETTINGS[key.strip()] = None if value.strip().lower() in ("none", "off") else json.loads(value)
        except json.JSONDecodeError:
            ap.error(f"--set {item}: the value must be a number, true/false, or none")
    sets = []
    if args.half in ("dev", "both"):
        sets.append(("dev", load_half(EVAL / "dev")))
    if args.half in ("test", "both"):
        sets.append(("test", load_half(EVAL / "test")))
    if args.real:
        sets.append((_real_name(args.real_half), load_real(args.real, args.corpus, args.real_half)))
    for name, cases in sets:
        founds, seconds = evaluate(cases)
        if args.show:
            show(cases, founds)
        print_table(name, table(cases, founds), seconds, sum(len(c.contents) for c in cases))


if __name__ == "__main__":
    main()
