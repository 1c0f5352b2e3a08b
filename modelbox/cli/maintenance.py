"""``modelbox check`` and ``modelbox refs sync``."""

from __future__ import annotations

import click

from modelbox.cli._common import Context, echo, emit_json, json_option, pass_ctx


@click.command("check")
@click.option("--fix", is_flag=True,
              help="Finish an interrupted write, rebuild drifted tag refs, then check again.")
@click.option("--schema", is_flag=True,
              help="Also run every document through its JSON Schema (slower; hooks do this).")
@click.option("--since", metavar="REV",
              help="Check only what the registry branch changed since REV (a branch, ref "
                   "or commit; what a push or CI job of a range needs), not the tag refs.")
@click.option("--strict", is_flag=True,
              help="Exit 1 on warnings too (tags moved outside modelbox).")
@json_option
@pass_ctx
def check(ctx: Context, fix: bool, schema: bool, since: str | None, strict: bool,
          as_json: bool) -> None:
    """Verify the registry's invariants and its tag refs; exit 1 if anything is wrong.

    Warnings (a tag moved by a plain git commit, which no audit record explains) are
    printed but do not fail the check unless --strict.
    """
    from modelbox.check import check as run_check
    from modelbox.check import check_range

    if fix:
        ctx.registry.recover()  # a write cut short: work tree, index, tag refs
        ctx.registry.sync_refs()
    if since is not None:
        from modelbox.diff import resolve_revision

        head = ctx.registry.head()
        base = resolve_revision(ctx.registry.repo, since)
        problems = [] if head is None else check_range(ctx.registry, base, head, schema=schema)
    else:
        problems = run_check(ctx.registry, schema=schema)
    if as_json:
        emit_json([{"path": p.path, "message": p.message, "fixable": p.fixable,
                    "warning": p.warning} for p in problems])
    else:
        for problem in problems:
            echo(str(problem), err=True)
        if not any(not p.warning for p in problems):
            warned = sum(p.warning for p in problems)
            echo("ok: registry is consistent"
                       + (f" ({warned} warning(s) above)" if warned else ""))
    if any(strict or not p.warning for p in problems):
        ctx_exit = click.get_current_context()
        ctx_exit.exit(1)


@click.group()
def refs() -> None:
    """Derived Git refs (refs/modelbox/*)."""


@refs.command("sync")
@json_option
@pass_ctx
def refs_sync(ctx: Context, as_json: bool) -> None:
    """Rebuild refs/modelbox/tags/* from the manifests (idempotent), and make the Git
    tags (GTO format) every model lacks when the git-tags setting is on."""
    changed = ctx.registry.sync_refs()
    made = ctx.registry.sync_git_tags()
    if as_json:
        emit_json({name: {"before": b, "after": a} for name, (b, a) in changed.items()}
                  | {f"refs/tags/{name}": {"before": None,
                                           "after": ctx.registry.repo.ref(f"refs/tags/{name}")}
                     for name in made})
        return
    for name, (before, after) in sorted(changed.items()):
        verb = "created" if before is None else "deleted" if after is None else "updated"
        echo(f"{verb} {name}")
    for name in made:
        echo(f"created refs/tags/{name}")
    echo(f"{len(changed) + len(made)} ref(s) changed")


@click.group()
def config() -> None:
    """Registry settings every clone shares (.modelbox/registry.json)."""


@config.command("protected-tags")
@click.argument("tags", required=False, metavar="[TAG,TAG...]")
@click.option("--none", "clear", is_flag=True, help="Protect no tag at all.")
@json_option
@pass_ctx
def config_protected_tags(ctx: Context, tags: str | None, clear: bool, as_json: bool) -> None:
    """Show or set the tags that release (freeze) the version they name."""
    registry = ctx.registry
    released: list[str] = []
    if clear or tags is not None:
        wanted = [] if clear else [t.strip() for t in (tags or "").split(",") if t.strip()]
        released = registry.set_protected_tags(wanted)
    current = list(registry.settings.protected_tags)
    if as_json:
        emit_json({"protected_tags": current, "released": released})
        return
    for name in released:
        echo(f"Released {name}")
    echo(f"Protected tags: {', '.join(current) or '(none)'}")


@config.command("git-tags")
@click.argument("state", required=False, type=click.Choice(["on", "off"]))
@json_option
@pass_ctx
def config_git_tags(ctx: Context, state: str | None, as_json: bool) -> None:
    """Show or set whether registrations and tag moves also make GTO-format Git tags
    (refs/tags/NAME@vX.Y.Z, NAME#STAGE#N), which forges show and CI can trigger on."""
    registry = ctx.registry
    changed = registry.set_git_tags(state == "on") if state is not None else False
    on = registry.settings.git_tags
    if as_json:
        emit_json({"git_tags": on, "changed": changed})
        return
    echo(f"Git tags: {'on' if on else 'off'}")


COMMANDS = [check, refs, config]
