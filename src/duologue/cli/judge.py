"""`duologue judge`: a model labels each message with the run's themes, as a second labeller."""

from __future__ import annotations

import sys

import click
from rich.text import Text

from .common import db_option, err_console, print_json, run_async
from .completion import complete_run_id
from .layout import Cell, Col, console_for, print_table, width_option


def _is_terminal() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


@click.command()
@click.argument("target", shell_complete=complete_run_id)
@click.option("--model", "-m", required=True, metavar="PROVIDER/MODEL", help="The judge's model string.")
@click.option("--base-url", metavar="URL", help="Where the judge's model is served (overrides the provider's).")
@click.option(
    "--api-key-env", metavar="VAR", help="The variable holding the judge's API key (default: the provider's)."
)
@click.option(
    "--window", type=click.IntRange(1, 64), default=8, show_default=True, help="Messages labelled per request."
)
@click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True, help="Requests sent at once.")
@click.option(
    "--response-format",
    type=click.Choice(["prompt", "json_object", "json_schema"]),
    default="prompt",
    show_default=True,
    help="How the JSON is asked for: in the prompt only (any provider), or also as the request's response_format "
    "with a schema of the labels: json_object (llama.cpp's servers) or json_schema (OpenAI's structured outputs).",
)
@click.option("--again", is_flag=True, help="Label every message anew (default: only those it has not labelled).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before a large judge run.")
@click.option("--json", "as_json", is_flag=True, help="Print what was labelled and the agreement as JSON.")
@width_option
@db_option
def judge(
    target, model, base_url, api_key_env, window, concurrency, response_format, again, yes, as_json, width, db
) -> None:
    """Label each message of a run or an experiment's runs with a model, beside the built-in labels.

    The judge gets the run's end-state themes (the built-in set or the run's theme file: id, label,
    description), the conversation's opening and WINDOW messages per request, and answers with a JSON
    object of one label per message; a reply that cannot be used is asked for once more. The labels are
    stored with the run, under the model string, and compared with the built-in analysis's: Cohen's κ per
    attractor family (`duologue report` and the viewer show it too). Messages the judge has labelled
    before are skipped, so running it again continues an interrupted run.

    The judge's tokens are yours: before labelling more than 100 messages it shows the count and an
    estimate of the tokens and asks (--yes does not ask; without a terminal it refuses unless --yes).
    """
    from .. import judge as judging
    from ..errors import DuologueError
    from ..store import Store

    spec = judging.Judge(model, base_url, api_key_env, window, concurrency, response_format)
    spec.check()  # a bad model string, a missing key, a response format it cannot send: one line now
    with Store(db, create=False) as store:
        runs, experiment = judging.target_runs(store, target)
        judging.ensure_analysed(store, runs)
        work = judging.plan(store, runs, spec, again=again)
    n, r = work.messages, len(work.runs)
    what = f"{n} message{'s' if n != 1 else ''} of {r} run{'s' if r != 1 else ''}"
    estimate = f"~{work.tokens:,} tokens, estimated ({work.prompt_tokens:,} in, {work.completion_tokens:,} out)"
    if n > judging.ASK_ABOVE and not yes:
        if not _is_terminal():
            raise DuologueError(f"judging {what} with {model} would use {estimate}: add --yes to go ahead")
        if not click.confirm(f"Judge {what} with {model}, {estimate}?", default=False, err=True):
            raise click.exceptions.Exit(1)
    results: list = []
    if n:
        if not as_json:
            err_console.print(Text(f"judging {what} with {model} ({estimate})", style="dim"))
        results = run_async(lambda: judging.ajudge(spec, work, db=db))
    from ..analysis.agreement import runs_agreement

    with Store(db, create=False) as store:
        overall = runs_agreement(store, runs, spec.labeller)
    if as_json:
        print_json(
            {
                "labeller": spec.labeller,
                "experiment": experiment,
                "runs": [
                    {
                        "run_id": res.run_id,
                        "labelled": res.labelled,
                        "unlabelled": res.unlabelled,
                        "retries": res.retries,
                        "prompt_tokens": res.prompt_tokens,
                        "completion_tokens": res.completion_tokens,
                    }
                    for res in results
                ],
                "agreement": overall.as_dict() if overall else None,
            }
        )
        return
    c = console_for(width)
    if not n:
        c.print(Text(f"{model} has labelled every message of {target} already (--again labels them anew)"))
    for res in results:
        left = f", {len(res.unlabelled)} left unlabelled (no usable reply)" if res.unlabelled else ""
        c.print(Text(f"run {res.run_id}: {res.labelled} labelled{left}"))
    _print_agreement(c, overall)


def _print_agreement(c, a) -> None:
    from ..analysis.agreement import format_kappa

    if a is None:
        c.print(Text("no message has labels from both the built-in analysis and the judge"))
        return
    rows: list[list[Cell]] = [
        [Text(f.label), str(f.first), str(f.second), str(f.both), format_kappa(f.kappa)]
        for f in a.families
        if f.first or f.second
    ]
    cols = (
        Col("family", wrap=True, min_width=12),
        Col(a.first, justify="right"),
        Col("judge", justify="right"),
        Col("both", justify="right"),
        Col("κ", justify="right"),
    )
    title = (
        f"agreement of {a.first} and {a.second} over {a.messages} messages "
        f"(Cohen's κ; overall {format_kappa(a.overall)})"
    )
    print_table(c, cols, rows, title=title, hint="or --json")
