"""``modelbox tag``, ``untag`` and ``resolve``."""

from __future__ import annotations

from datetime import datetime, timezone

import click

from modelbox import isotime
from modelbox.cli._common import Context, echo, emit_json, json_option, model_arg, pass_ctx, ref_arg
from modelbox.cli.completion import complete_model, complete_ref
from modelbox.errors import InvalidValueError
from modelbox.names import ModelName


@click.command()
@click.argument("ref", metavar="MODEL@VERSION|MODEL:TAG", shell_complete=complete_ref)
@click.argument("tag")
@json_option
@pass_ctx
def tag(ctx: Context, ref: str, tag: str, as_json: bool) -> None:
    """Give the version REF the unique TAG, moving it from any other version."""
    parsed = ref_arg(ref)
    version = ctx.registry.resolve(parsed)
    before = ctx.registry.tag(parsed.model, version, tag)
    if as_json:
        emit_json({"tag": f"{parsed.model}:{tag}", "before": before, "after": version,
                   "moved": before != version, "pinned": _pinned(ctx, parsed.model, tag)})
        return
    if before == version:
        echo(f"{parsed.model}:{tag} already points to {version}")
    elif before:
        echo(f"Moved {parsed.model}:{tag} from {before} to {version}")
    else:
        echo(f"Tagged {parsed.model}@{version} as {tag}")
    _say_pinned(ctx, parsed.model, tag)


def _pinned(ctx: Context, model: ModelName, tag: str) -> bool:
    from modelbox.policies import pinned

    return tag in pinned(ctx.registry, model)


def _say_pinned(ctx: Context, model: ModelName, tag: str) -> None:
    """A tag a labelling policy manages is pinned by a move by hand: say so, and how to
    undo it (policy moves skip it until then)."""
    if _pinned(ctx, model, tag):
        echo(f"{model}:{tag} is pinned against policy moves; `modelbox policy unpin {model} "
             f"{tag}` lets the labelling policy move it again")


@click.command()
@click.argument("model", shell_complete=complete_model)
@click.argument("tag")
@json_option
@pass_ctx
def untag(ctx: Context, model: str, tag: str, as_json: bool) -> None:
    """Remove the unique TAG from MODEL."""
    name = model_arg(model)
    before = ctx.registry.untag(name, tag)
    if as_json:
        emit_json({"tag": f"{name}:{tag}", "before": before, "after": None, "moved": True,
                   "pinned": _pinned(ctx, name, tag)})
    else:
        echo(f"Removed {model}:{tag} (was on {before})")
        _say_pinned(ctx, name, tag)


@click.command()
@click.argument("ref", metavar="MODEL:TAG|MODEL@VERSION", shell_complete=complete_ref)
@click.option(
    "--at", "at", metavar="DATE",
    help="The version the tag pointed to at DATE (ISO 8601, e.g. 2026-11-01T12:00).",
)
@json_option
@pass_ctx
def resolve(ctx: Context, ref: str, at: str | None, as_json: bool) -> None:
    """Print the version REF names (`latest` is the newest version)."""
    parsed = ref_arg(ref)
    if at is None:
        from modelbox import resolver

        found = ctx.read_branch(
            lambda files: resolver.resolve(files, parsed, version_needed=True))
        version = found.version
        if as_json:
            emit_json({"ref": str(parsed), "model": str(parsed.model), "version": version}
                      | ({"experiment": True} if found.experiment else {}))
        else:
            echo(version)
        return
    from modelbox.audit import OUTSIDE  # here: --help and resolve load no history code

    event = ctx.registry.tag_event_at(parsed, _parse_date(at))
    if event is None or event.after is None:
        raise InvalidValueError(f"{parsed} pointed to no version at {at}")
    if as_json:
        emit_json({"ref": str(parsed), "model": str(parsed.model), "version": event.after,
                   "at": at, "commit": event.commit, "outside": event.operation.endswith(OUTSIDE)})
        return
    echo(event.after)
    if event.operation.endswith(OUTSIDE):
        echo(f"note: {parsed} ({event.before or '-'} -> {event.after}) was changed "
                   f"outside modelbox by {event.author} in commit {event.commit[:10]} "
                   f"({event.time.isoformat()}); no audit record says why", err=True)


def _parse_date(value: str) -> datetime:
    try:
        when = isotime.parse(value)
    except ValueError:
        raise InvalidValueError(f"{value!r} is not an ISO 8601 date or time") from None
    return when if when.tzinfo else when.astimezone(timezone.utc)


COMMANDS = [tag, untag, resolve]
