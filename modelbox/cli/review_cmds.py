"""``modelbox diff``, ``install-hooks`` and ``codeowners``: reviewing registry changes."""

from __future__ import annotations

import click

from modelbox.cli._common import Context, echo, emit_json, json_option, pass_ctx


@click.command("diff")
@click.argument("base", required=False)
@click.argument("head", required=False)
@click.option("--format", "fmt", type=click.Choice(["markdown", "json"]), default="markdown",
              show_default=True, help="Markdown for a pull-request comment, or JSON.")
@pass_ctx
def diff(ctx: Context, base: str | None, head: str | None, fmt: str) -> None:
    """Tags moved, versions, metric deltas and artifacts between BASE and HEAD.

    BASE and HEAD are branches, refs or full commit shas (`~N`, `^N` allowed). HEAD
    defaults to --branch, else the checked-out branch; BASE to the registry branch, or to
    its upstream (origin/BRANCH) when HEAD is the registry branch.
    """
    from modelbox.diff import diff as run_diff
    from modelbox.diff import to_markdown

    result = run_diff(ctx.registry, base, head)
    if fmt == "json":
        emit_json(result.to_json())
    else:
        echo(to_markdown(result), nl=False)


@click.command("install-hooks")
@click.option("--force", is_flag=True,
              help="Replace a user hook that cannot be chained (its .local exists too).")
@json_option
@pass_ctx
def install_hooks(ctx: Context, force: bool, as_json: bool) -> None:
    """Install Git hooks so plain `git push` / `git pull` keep modelbox's guarantees.

    pre-push puts the objects pushed pointers need in the remote's store (or stops the
    push); post-merge, post-checkout and post-rewrite run `refs sync`. An existing hook is
    kept as HOOK.local and run first.
    """
    from modelbox.githooks import install

    installed = install(ctx.registry.repo, force=force)
    if as_json:
        emit_json([{"action": h.action, "path": str(h.path)} for h in installed])
        return
    for hook in installed:
        echo(f"{hook.action} {hook.path}")


@click.command("codeowners")
@click.option("--write", is_flag=True, help="Commit it as CODEOWNERS instead of printing it.")
@json_option
@pass_ctx
def codeowners(ctx: Context, write: bool, as_json: bool) -> None:
    """A CODEOWNERS file from the models' owners (owners then review promotions)."""
    from modelbox import codeowners as owners

    if as_json:
        changed = owners.write(ctx.registry) if write else False
        emit_json({"path": owners.PATH, "written": changed,
                   **({} if write else {"content": owners.render(ctx.registry)})})
    elif not write:
        echo(owners.render(ctx.registry), nl=False)
    elif owners.write(ctx.registry):
        echo(f"Wrote {owners.PATH} on {ctx.registry.branch_ref[len('refs/heads/'):]}")
    else:
        echo(f"{owners.PATH} is up to date")


COMMANDS = [diff, install_hooks, codeowners]
