"""``modelbox log``: the audit log, read from Git history."""

from __future__ import annotations

import click

from modelbox.cli._common import Context, echo, emit_json, json_option, pass_ctx, ref_arg
from modelbox.cli.completion import complete_ref


@click.command()
@click.argument(
    "target", required=False, metavar="[MODEL|MODEL@VERSION|MODEL:TAG]", shell_complete=complete_ref
)
@click.option("-n", "--limit", type=click.IntRange(min=1), help="Show at most N events.")
@json_option
@pass_ctx
def log(ctx: Context, target: str | None, limit: int | None, as_json: bool) -> None:
    """Who changed what, when, before -> after — newest first."""
    name = str(ref_arg(target)) if target else None
    events = ctx.registry.log(name)[:limit]
    if as_json:
        emit_json([e.to_json() for e in events])
        return
    for e in events:
        change = ""
        if e.before is not None or e.after is not None:
            change = f"  {e.before or '-'} -> {e.after or '-'}"
        echo(
            f"{e.time.isoformat()}  {e.commit[:10]}  {e.author}  {e.operation}  {e.target}{change}"
        )


COMMANDS = [log]
