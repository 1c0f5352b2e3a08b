"""``modelbox tag``, ``untag`` and ``resolve``."""

from __future__ import annotations

from datetime import datetime, timezone

import click

from modelbox.cli._common import Context, echo, model_arg, pass_ctx, ref_arg
from modelbox.errors import InvalidValueError
from modelbox.names import ModelName


@click.command()
@click.argument("ref", metavar="MODEL@VERSION|MODEL:TAG")
@click.argument("tag")
@pass_ctx
def tag(ctx: Context, ref: str, tag: str) -> None:
    """Give the version REF the unique TAG, moving it from any other version."""
    parsed = ref_arg(ref)
    version = ctx.registry.resolve(parsed)
    before = ctx.registry.tag(parsed.model, version, tag)
    if before == version:
        echo(f"{parsed.model}:{tag} already points to {version}")
    elif before:
        echo(f"Moved {parsed.model}:{tag} from {before} to {version}")
    else:
        echo(f"Tagged {parsed.model}@{version} as {tag}")
    _say_pinned(ctx, parsed.model, tag)


def _say_pinned(ctx: Context, model: ModelName, tag: str) -> None:
    """A tag a labelling policy manages is pinned by a move by hand: say so, and how to
    undo it (policy moves skip it until then)."""
    from modelbox.policies import pinned

    if tag in pinned(ctx.registry, model):
        echo(f"{model}:{tag} is pinned against policy moves; `modelbox policy unpin {model} "
             f"{tag}` lets the labelling policy move it again")


@click.command()
@click.argument("model")
@click.argument("tag")
@pass_ctx
def untag(ctx: Context, model: str, tag: str) -> None:
    """Remove the unique TAG from MODEL."""
    name = model_arg(model)
    before = ctx.registry.untag(name, tag)
    echo(f"Removed {model}:{tag} (was on {before})")
    _say_pinned(ctx, name, tag)


@click.command()
@click.argument("ref", metavar="MODEL:TAG|MODEL@VERSION")
@click.option(
    "--at", "at", metavar="DATE",
    help="The version the tag pointed to at DATE (ISO 8601, e.g. 2026-11-01T12:00).",
)
@pass_ctx
def resolve(ctx: Context, ref: str, at: str | None) -> None:
    """Print the version REF names (`latest` is the newest version)."""
    parsed = ref_arg(ref)
    if at is None:
        echo(ctx.registry.resolve(parsed))
        return
    from modelbox.audit import OUTSIDE  # here: --help and resolve load no history code

    event = ctx.registry.tag_event_at(parsed, _parse_date(at))
    if event is None or event.after is None:
        raise InvalidValueError(f"{parsed} pointed to no version at {at}")
    echo(event.after)
    if event.operation.endswith(OUTSIDE):
        echo(f"note: {parsed} ({event.before or '-'} -> {event.after}) was changed "
                   f"outside modelbox by {event.author} in commit {event.commit[:10]} "
                   f"({event.time.isoformat()}); no audit record says why", err=True)


def _parse_date(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidValueError(f"{value!r} is not an ISO 8601 date or time") from None
    return when if when.tzinfo else when.astimezone(timezone.utc)


COMMANDS = [tag, untag, resolve]
