"""Import a folder of real logs by path and say what became of every file: the check for a new corpus.

    .venv/bin/python bench/import_corpus.py PATH [PATH …] [--experiment NAME] [--report] [--db FILE]

Runs `duologue import PATH… [--experiment NAME]` (the CLI itself, in this process) into a new temporary
store (or --db), then reads the store back and prints:

- files read, runs imported, files already imported, files left alone (a folder's files no format
  recognises: side files such as UniversalBackrooms' `.media_state.json`);
- the files skipped, their reasons grouped (numbers and quoted names folded, so one reason is one
  line), with an example of each;
- participants that look like agents (`Media Agent`, `Discord …`, `SQL …`): must be 0;
- stop reasons, the runs with agent events, the import's notes (bytes that were not UTF-8);
- the wall time of the import and, with --report (needs --experiment), of `duologue report` over the
  collection, with its end-state shares by pairing.

For the UniversalBackrooms corpus: clone github.com/samhains/UniversalBackrooms and give
`var/backrooms_logs`, or an older `BackroomsLogs/` folder of its history (`git archive b0da801
BackroomsLogs | tar -x`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from click.testing import CliRunner

from duologue.cli import cli
from duologue.store import Store

AGENT_NAME = re.compile(r"\b(Agent|Discord|SQL)\b")


def fold(reason: str) -> str:
    """A reason with its particulars folded, so the same reason of many files is one group."""
    reason = re.sub(r"\((Template|Models)[^)]*\)", "(…)", reason)
    reason = re.sub(r"'[^'\s]*'|\"[^\"]*\"", "'…'", reason)
    return re.sub(r"\d+", "N", reason)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--experiment", help="import into this collection (and analyse each run)")
    parser.add_argument("--report", action="store_true", help="then time `duologue report` over the collection")
    parser.add_argument("--db", type=Path, help="the store (default: a new one in a temporary folder)")
    args = parser.parse_args()
    if args.report and not args.experiment:
        parser.error("--report needs --experiment")
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "corpus.db"
        command = ["import", *map(str, args.paths), "--db", str(db), "--json"]
        if args.experiment:
            command += ["--experiment", args.experiment]
        started = time.perf_counter()
        result = CliRunner().invoke(cli, command, catch_exceptions=False)
        import_seconds = time.perf_counter() - started
        if result.exit_code not in (0, 1):
            print(result.output, file=sys.stderr)
            return 2
        outcome = json.loads(result.stdout)
        report = report_seconds = None
        if args.report:
            started = time.perf_counter()
            shown = CliRunner().invoke(
                cli, ["report", args.experiment, "--db", str(db), "-o", str(Path(tmp) / "report"), "--json"]
            )
            report_seconds = time.perf_counter() - started
            if shown.exit_code != 0:
                print(shown.output, file=sys.stderr)
                return 2
            report = json.loads(shown.stdout)
        print_outcome(outcome, db, import_seconds, result.exit_code)
        if report is not None:
            print_report(report, report_seconds)
    return 0


def print_outcome(outcome: dict, db: Path, seconds: float, exit_code: int) -> None:
    imported = outcome["imported"]
    files = {r["source"] for r in imported}
    print(f"files read: {outcome['files']}  (exit status {exit_code})")
    print(f"imported: {len(files)} files, {len(imported)} runs, {sum(r['messages'] for r in imported)} messages")
    print(f"already imported: {len(outcome['known'])} files")
    print(f"left alone (no format recognises them): {len(outcome['ignored'])} files")
    print(f"skipped: {len(outcome['skipped'])} files")
    groups = Counter(fold(s["reason"]) for s in outcome["skipped"])
    examples = {fold(s["reason"]): s for s in outcome["skipped"]}
    for reason, n in groups.most_common():
        print(f"  {n:4}  {reason}")
        print(f"        e.g. {examples[reason]['file']}: {examples[reason]['reason']}")
    if not Path(db).exists():
        return
    with Store(db, create=False) as store:
        runs = store.list_runs()
        agents = sorted({p for r in runs for p in r.participants if AGENT_NAME.search(p)})
        print(f"participants that look like agents: {len(agents)}" + (f" ({', '.join(agents)})" if agents else ""))
        print("stop reasons: " + ", ".join(f"{k} {v}" for k, v in Counter(r.stop_reason for r in runs).most_common()))
        kinds = store.conn.execute(
            "SELECT kind, COUNT(*), COUNT(DISTINCT run_id) FROM events GROUP BY kind ORDER BY kind"
        ).fetchall()
        for kind, n, in_runs in kinds:
            print(f"events {kind}: {n} in {in_runs} runs")
    for note in outcome["notes"]:
        print(f"note: {note['file']}: {note['note']}")
    print(f"import: {seconds:.1f} s")


def print_report(report: dict, seconds: float | None) -> None:
    print(f"report over {report['runs']} runs: {seconds:.1f} s")
    labels = report["attractors"].get("labels") or {}
    for group in report["attractors"].get("by_pairing", []):
        ends = ", ".join(f"{labels.get(k, k)} {v:.0%}" for k, v in group["end_states"].items())
        print(f"  {group['group']} ({group['runs']} runs): {ends}")


if __name__ == "__main__":
    sys.exit(main())
