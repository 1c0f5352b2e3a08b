"""``modelbox clone``, ``push``, ``pull`` and ``status``."""

from __future__ import annotations

from pathlib import Path

import click

from modelbox.cli._common import Context, echo, emit_json, json_option, pass_ctx


def _short(sha: str | None) -> str:
    return sha[:10] if sha else "(none)"


@click.command()
@click.argument("url")
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option("--origin", "-o", default="origin", show_default=True, help="Name of the remote.")
@json_option
def clone(url: str, directory: Path | None, origin: str, as_json: bool) -> None:
    """Clone the registry at URL: its branch and refs/modelbox/*, checked out."""
    from modelbox.sync import clone as run_clone

    dest = run_clone(url, directory, name=origin)
    if as_json:
        emit_json({"url": url, "directory": str(dest), "remote": origin})
        return
    echo(f"Cloned {url} into {dest}")


@click.command()
@click.argument("remote", required=False)
@click.option("--retry/--no-retry", default=True, show_default=True,
              help="If the remote moved, merge its new commits (as pull does) and push again.")
@json_option
@pass_ctx
def push(ctx: Context, remote: str | None, retry: bool, as_json: bool) -> None:
    """Send objects, then the registry branch and refs/modelbox/*, to REMOTE (origin)."""
    from modelbox.sync import push as run_push

    result = run_push(ctx.registry, remote, retry=retry)
    if as_json:
        emit_json(result.to_json())
        return
    if result.pulls:
        echo(f"{result.url} had new commits: merged them into {result.branch} "
                   f"as `modelbox pull` does, then pushed again")
    if not result.refs:
        echo(f"Everything up to date with {result.url}")
    else:
        echo(f"Pushed {result.branch} {_short(result.before)}..{_short(result.after)} "
                   f"to {result.url}: {len(result.refs)} ref(s), "
                   f"{result.objects} object(s) uploaded")


@click.command()
@click.argument("remote", required=False)
@json_option
@pass_ctx
def pull(ctx: Context, remote: str | None, as_json: bool) -> None:
    """Fetch from REMOTE (origin), fast-forward or merge, and rebuild the tag refs."""
    from modelbox.sync import pull as run_pull

    result = run_pull(ctx.registry, remote)
    if as_json:
        emit_json(result.to_json())
    elif result.how == "up to date":
        echo(f"Already up to date with {result.url}")
    else:
        echo(f"Pulled {result.branch} ({result.how}) {_short(result.before)}.."
                   f"{_short(result.after)}; {len(result.refs)} tag ref(s) changed")
    if result.git_tags and not as_json:
        echo(f"{len(result.git_tags)} Git tag(s) (GTO format) taken or made")


@click.command()
@click.argument("remote", required=False)
@json_option
@pass_ctx
def status(ctx: Context, remote: str | None, as_json: bool) -> None:
    """Unpushed commits, objects missing here or there, and tag-ref drift."""
    from modelbox.sync import status as run_status

    state = run_status(ctx.registry, remote)
    if as_json:
        emit_json(state.to_json())
        return
    behind = "unknown (run `modelbox pull`)" if state.behind is None else state.behind
    echo(f"{state.branch} vs {state.url}: {state.ahead} to push, {behind} to pull; "
               f"audit {state.audit}")
    echo(f"objects missing locally: {len(state.missing_locally)}")
    remotely = "unknown" if state.missing_remotely is None else len(state.missing_remotely)
    echo(f"objects missing remotely: {remotely}")
    for ref, what in state.ref_drift.items():
        echo(f"local ref {what}: {ref}")
    for ref, what in state.remote_ref_drift.items():
        echo(f"remote ref {what}: {ref}")


COMMANDS = [clone, push, pull, status]
