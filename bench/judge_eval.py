"""How well a judge model's labels find attractors on the blind set: the measurement for `duologue judge`.

`python bench/attractor_eval.py` scores the built-in analysis on the blind set (bench/attractor_eval/);
this scores a judge's. Each conversation of the chosen half is stored as an imported run (in --db, so
an interrupted or repeated run continues where it stopped and pays for no label twice), labelled by
the judge as `duologue judge` labels a run (the built-in themes, WINDOW messages per request), and the
attractor rule of `duologue analyze` runs on the judge's labels (as `duologue report --labeller` does;
from labels alone, a family is the topic when the conversation is in it from its first exchange).
Printed: the same table as attractor_eval.py (per family precision, recall, onset error) for the
judge's labels and, beside it, for the built-in analysis of the same conversations; and their
agreement per message (Cohen's κ overall).

The judge's tokens are yours: it shows the count and an estimate first, and above 100 messages it
labels only with --yes. `--limit N` takes the half's first N conversations (a cheap first look).

    python bench/judge_eval.py --model PROVIDER/MODEL [--base-url URL] [--api-key-env VAR]
        [--half test|dev] [--limit N] [--window 8] [--concurrency 4]
        [--response-format prompt|json_object|json_schema] [--db FILE] [--yes]

For example, a model of an OpenAI-compatible server: `--model openai-compatible/NAME --base-url
http://127.0.0.1:8080/v1 --response-format json_object`; a hosted one: `--model openai/gpt-4.1-mini`
with OPENAI_API_KEY set.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from attractor_eval import EVAL, FAMILY_OF, Case, Found, find, load_half, print_table, table  # noqa: E402

DEFAULT_DB = Path(__file__).resolve().parent.parent / "runs" / "judge_eval.db"


def as_run(case: Case):
    """A blind conversation as an imported run (its file, its speakers in turn)."""
    from duologue.importers.common import foreign_run
    from duologue.records import Message

    participants = list(dict.fromkeys(case.speakers))
    pairs = zip(case.speakers, case.contents, strict=True)
    messages = [Message(index=k, speaker=s, content=c) for k, (s, c) in enumerate(pairs, 1)]
    path = next(EVAL / h / f"{case.id}.json" for h in ("dev", "test") if (EVAL / h / f"{case.id}.json").exists())
    return foreign_run(case.id, path, participants, messages, started_at=datetime(2026, 12, 4, tzinfo=UTC))


def verdict(labels: dict[int, str | None], n: int) -> Found:
    """The attractor rule of `duologue report --labeller` on a labeller's labels of messages 1..n."""
    from duologue.analysis.experiment_report import labelled_ends

    found = labelled_ends({}, labels, n)
    return Found(
        FAMILY_OF.get(found.attractor, found.attractor) if found.attractor else None,
        found.onset,
        FAMILY_OF.get(found.topic, found.topic) if found.topic else None,
        found.end_state,
    )


def evaluate(cases: list[Case], judge, db: Path, *, yes: bool = False, out=print) -> dict:
    """Store, label and score `cases` with `judge` (duologue.judge.Judge); {"judge": rows, "built-in": rows,
    "kappa": overall κ or None, "labelled": messages labelled now}."""
    from duologue import judge as judging
    from duologue.analysis.agreement import runs_agreement
    from duologue.errors import DuologueError
    from duologue.store import Store

    db.parent.mkdir(parents=True, exist_ok=True)
    with Store(db) as store:
        store.create_runs([as_run(c) for c in cases if not store.has_run(c.id)])
        runs = [store.get_run(c.id) for c in cases]
        judging.ensure_analysed(store, runs)
        work = judging.plan(store, runs, judge)
    if work.messages:
        out(
            f"judge_eval: {work.messages} messages of {len(work.runs)} conversations to label with {judge.model}, "
            f"~{work.tokens:,} tokens estimated ({work.prompt_tokens:,} in, {work.completion_tokens:,} out)"
        )
        if work.messages > judging.ASK_ABOVE and not yes:
            raise DuologueError("add --yes to label them (or --limit N for fewer conversations)")
        done = 0

        def progress(run_id: str, n: int) -> None:
            nonlocal done
            done += n
            if sys.stderr.isatty():
                print(f"\rjudge_eval: {done}/{work.messages} messages labelled", end="", file=sys.stderr, flush=True)

        got = asyncio.run(judging.ajudge(judge, work, db=db, on_window=progress))
        if sys.stderr.isatty():
            print(file=sys.stderr)
        unusable = sum(len(r.unlabelled) for r in got)
        out(
            f"judge_eval: {sum(r.labelled for r in got)} labelled now, {unusable} left unlabelled (no usable reply "
            f"after a retry), {sum(r.retries for r in got)} retries"
        )
    rows: dict = {}
    with Store(db) as store:
        judged = [verdict(store.message_labels(c.id, judge.labeller), len(c.contents)) for c in cases]
        rows["judge"] = table(cases, judged)
        agreement = runs_agreement(store, runs, judge.labeller)
    t = time.perf_counter()
    rows["built-in"] = table(cases, [find(c) for c in cases])  # `duologue analyze`, as attractor_eval.py scores it
    rows["built-in seconds"] = time.perf_counter() - t
    rows["kappa"] = agreement.overall if agreement else None
    rows["labelled"] = work.messages
    return rows


def main() -> None:
    from duologue import judge as judging
    from duologue.errors import DuologueError

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", "-m", required=True, metavar="PROVIDER/MODEL", help="the judge's model string")
    ap.add_argument("--base-url", help="where the judge's model is served")
    ap.add_argument("--api-key-env", help="the variable holding the judge's API key")
    ap.add_argument("--half", choices=("test", "dev"), default="test", help="which half (default: test)")
    ap.add_argument("--limit", type=int, help="only the half's first N conversations")
    ap.add_argument("--window", type=int, default=8, help="messages labelled per request (default 8)")
    ap.add_argument("--concurrency", type=int, default=4, help="requests at once (default 4)")
    ap.add_argument("--response-format", choices=judging.RESPONSE_FORMATS, default="prompt")
    ap.add_argument("--db", type=Path, default=DEFAULT_DB, help=f"the store of labels (default {DEFAULT_DB})")
    ap.add_argument("--yes", "-y", action="store_true", help="label more than 100 messages without stopping")
    args = ap.parse_args()
    if args.limit is not None and args.limit < 1:
        ap.error("--limit must be at least 1")
    judge = judging.Judge(
        args.model, args.base_url, args.api_key_env, args.window, args.concurrency, args.response_format
    )
    cases = load_half(EVAL / args.half)[: args.limit]
    try:
        judge.check()  # a bad model string, a missing key, a response format it cannot send: one line now
        t = time.perf_counter()
        result = evaluate(cases, judge, args.db, yes=args.yes)
    except DuologueError as e:
        sys.exit(f"judge_eval: {e}")
    seconds = time.perf_counter() - t - result["built-in seconds"]
    messages = sum(len(c.contents) for c in cases)
    print_table(f"{args.half}, labels by {args.model}", result["judge"], seconds, messages)
    print_table(
        f"{args.half}, labels by the built-in analysis", result["built-in"], result["built-in seconds"], messages
    )
    kappa = result["kappa"]
    print(f"\nagreement of the two labellers per message: Cohen's κ {'-' if kappa is None else f'{kappa:.2f}'}")


if __name__ == "__main__":
    main()
