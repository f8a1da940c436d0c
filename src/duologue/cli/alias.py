"""`duologue alias set|ls|rm`: short names for model strings and their connection settings (aliases.py)."""

from __future__ import annotations

import click
from rich.table import Table
from rich.text import Text

from .common import print_json
from .layout import console_for, print_trimmed


@click.group("alias")
def alias() -> None:
    """Name a model string with its base URL, key variable and extra parameters.

    An alias is usable wherever a model string is (--a/--b, a participant's
    `model`, an experiment's pool). Aliases live in aliases.toml in the user's
    config folder (DUOLOGUE_CONFIG_DIR overrides it); a run's stored spec keeps
    what the alias stood for, and its name.
    """


@alias.command("set")
@click.argument("name")
@click.argument("model")
@click.option("--base-url", help="Where the model is served (overrides the provider's preset).")
@click.option("--api-key-env", metavar="VAR", help="The environment variable holding the key (never the key).")
@click.option(
    "--extra",
    "extra",
    multiple=True,
    metavar="KEY=VALUE",
    help="An extra request parameter (repeatable); VALUE is read as TOML when it parses "
    "(numbers, true, arrays), a dotted KEY makes a table: --extra provider.sort=price.",
)
def set_cmd(name, model, base_url, api_key_env, extra) -> None:
    """Set alias NAME to MODEL (provider/model), replacing any alias of that name."""
    from pydantic import ValidationError

    from ..aliases import Alias, check_name, parse_extra, set_alias
    from ..backends.registry import parse_model_string
    from ..errors import SpecError

    check_name(name)
    parse_model_string(model)  # an unknown provider or a malformed string: the usual one line
    fields = {"model": model, "base_url": base_url, "api_key_env": api_key_env, "extra": parse_extra(extra)}
    try:
        entry = Alias.model_validate(fields)
    except ValidationError as err:
        first = err.errors()[0]
        raise SpecError(f"alias {name}: {first['loc'][0]}: {first['msg']}") from None
    path = set_alias(name, entry)
    click.echo(f"{name} → {model}  ({path})")


@alias.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print the aliases as one JSON object, by name.")
def ls_cmd(as_json) -> None:
    """List the aliases."""
    from ..aliases import aliases_path, load_aliases

    aliases = load_aliases()
    if as_json:
        print_json({name: a.model_dump() for name, a in sorted(aliases.items())})
        return
    if not aliases:
        click.echo(f"no aliases yet ({aliases_path()}): duologue alias set NAME provider/model")
        return
    table = Table(box=None, header_style="bold")
    for col in ("alias", "model", "base URL", "key variable", "extra"):
        table.add_column(col)
    for name, a in sorted(aliases.items()):
        extra = ", ".join(f"{k}={v}" for k, v in a.extra.items())
        table.add_row(Text(name), Text(a.model), Text(a.base_url or ""), Text(a.api_key_env or ""), Text(extra))
    print_trimmed(console_for(None), table)  # piped: one line an alias, however long


@alias.command("rm")
@click.argument("name")
def rm_cmd(name) -> None:
    """Remove alias NAME (runs made with it keep what it stood for)."""
    from ..aliases import remove_alias

    remove_alias(name)
    click.echo(f"removed {name}")
