"""``modelbox artifact add|track|list`` and ``modelbox get``."""

from __future__ import annotations

from pathlib import Path

import click

from modelbox import releases
from modelbox.cli._common import Context, echo, emit_json, json_option, pass_ctx, ref_arg
from modelbox.filetypes import FileType

_quiet = click.option("-q", "--quiet", is_flag=True, help="No progress bar.")


def _progress(quiet: bool) -> bool | None:
    return False if quiet else None  # None: a bar only when stderr is a terminal


@click.group()
def artifact() -> None:
    """Upload, track and list the artifacts of a model or version."""


@artifact.command("add")
@click.argument("target", metavar="MODEL|MODEL@VERSION|MODEL:TAG")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--type", "file_type", type=click.Choice([t.value for t in FileType]),
              help="File type (default: detected).")
@click.option("--as", "name", help="Artifact path in the registry (default: the file name).")
@_quiet
@pass_ctx
def artifact_add(
    ctx: Context, target: str, paths: tuple[Path, ...], file_type: str | None,
    name: str | None, quiet: bool,
) -> None:
    """Upload files or folders (a folder becomes one directory artifact)."""
    releases.refuse_frozen(ctx.registry.snapshot(), ref_arg(target))  # before any import
    from modelbox import artifacts

    added = artifacts.add(
        ctx.registry, ref_arg(target), list(paths),
        file_type=FileType(file_type) if file_type else None, name=name,
        progress=_progress(quiet),
    )
    for a in added:
        echo(f"Added {a.parent}/{a.path} sha256:{a.checksum} ({a.size} bytes)")


@artifact.command("track")
@click.argument("target", metavar="MODEL|MODEL@VERSION|MODEL:TAG")
@click.argument("uris", nargs=-1, required=True)
@pass_ctx
def artifact_track(ctx: Context, target: str, uris: tuple[str, ...]) -> None:
    """Record files that stay where they are (s3://, gs://, https://...)."""
    releases.refuse_frozen(ctx.registry.snapshot(), ref_arg(target))
    from modelbox import artifacts

    for a in artifacts.track(ctx.registry, ref_arg(target), list(uris)):
        echo(f"Tracked {a.uri} ({a.size} bytes, etag {a.etag or '-'})")


@artifact.command("list")
@click.argument("target", metavar="MODEL|MODEL@VERSION|MODEL:TAG")
@json_option
@pass_ctx
def artifact_list(ctx: Context, target: str, as_json: bool) -> None:
    """List artifacts: path, sha256 or URI, size, type, MIME type."""
    from modelbox import artifacts

    found = artifacts.list_artifacts(ctx.registry, ref_arg(target))
    if as_json:
        emit_json([a.to_json() for a in found])
        return
    for a in found:
        echo(f"{a.path}\t{a.checksum or a.uri}\t{a.size}\t{a.file_type}\t{a.mime_type}")


@click.command()
@click.argument("target", metavar="MODEL@VERSION|MODEL:TAG")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), default=".",
              show_default=True, help="Folder to place the artifacts in.")
@click.option("--verify", is_flag=True, help="Re-hash cached objects before using them.")
@_quiet
@pass_ctx
def get(ctx: Context, target: str, out: Path, verify: bool, quiet: bool) -> None:
    """Download a version's artifacts, verified, each file whole or not at all."""
    from modelbox import artifacts

    placed = artifacts.get(ctx.registry, ref_arg(target), out, progress=_progress(quiet),
                           verify=verify)
    echo(f"Placed {len(placed)} file(s) in {out}")


COMMANDS = [artifact, get]
