"""``modelbox check`` and ``modelbox refs sync``."""

from __future__ import annotations

import click

from modelbox.cli._common import Context, emit_json, json_option, pass_ctx


@click.command("check")
@click.option("--fix", is_flag=True,
              help="Finish an interrupted write, rebuild drifted tag refs, then check again.")
@click.option("--schema", is_flag=True,
              help="Also run every document through its JSON Schema (slower; hooks do this).")
@json_option
@pass_ctx
def check(ctx: Context, fix: bool, schema: bool, as_json: bool) -> None:
    """Verify the registry's invariants and its tag refs; exit 1 if anything is wrong."""
    from modelbox.check import check as run_check

    if fix:
        ctx.registry.recover()  # a write cut short: work tree, index, tag refs
        ctx.registry.sync_refs()
    problems = run_check(ctx.registry, schema=schema)
    if as_json:
        emit_json([{"path": p.path, "message": p.message, "fixable": p.fixable}
                   for p in problems])
    else:
        for problem in problems:
            click.echo(str(problem), err=True)
        if not problems:
            click.echo("ok: registry is consistent")
    if problems:
        ctx_exit = click.get_current_context()
        ctx_exit.exit(1)


@click.group()
def refs() -> None:
    """Derived Git refs (refs/modelbox/*)."""


@refs.command("sync")
@json_option
@pass_ctx
def refs_sync(ctx: Context, as_json: bool) -> None:
    """Rebuild refs/modelbox/tags/* from the manifests (idempotent)."""
    changed = ctx.registry.sync_refs()
    if as_json:
        emit_json({name: {"before": b, "after": a} for name, (b, a) in changed.items()})
        return
    for name, (before, after) in sorted(changed.items()):
        verb = "created" if before is None else "deleted" if after is None else "updated"
        click.echo(f"{verb} {name}")
    click.echo(f"{len(changed)} ref(s) changed")


COMMANDS = [check, refs]
