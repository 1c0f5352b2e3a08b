"""``modelbox artifact add|track|remove|list`` and ``modelbox get``."""

from __future__ import annotations

from pathlib import Path

import click

from modelbox import releases
from modelbox.cli._common import (
    Context,
    done,
    echo,
    emit_json,
    json_option,
    pass_ctx,
    ref_arg,
    target_name,
    version_ref_arg,
)
from modelbox.cli.completion import complete_ref
from modelbox.filetypes import FileType

_quiet = click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
_replace = click.option("--replace", is_flag=True,
                        help="Replace an artifact of the same name (audited before -> after).")


def _progress(quiet: bool) -> bool | None:
    return False if quiet else None  # None: a bar only when stderr is a terminal


@click.group()
def artifact() -> None:
    """Upload, track and list the artifacts of a model or version."""


@artifact.command("add")
@click.argument("target", metavar="MODEL|MODEL@VERSION|MODEL:TAG", shell_complete=complete_ref)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--type", "file_type", type=click.Choice([t.value for t in FileType]),
              help="File type (default: detected).")
@click.option("--as", "name", help="Artifact path in the registry (default: the file name).")
@_replace
@_quiet
@json_option
@pass_ctx
def artifact_add(
    ctx: Context, target: str, paths: tuple[Path, ...], file_type: str | None,
    name: str | None, replace: bool, quiet: bool, as_json: bool,
) -> None:
    """Upload files or folders (a folder becomes one directory artifact)."""
    releases.refuse_frozen(ctx.registry.snapshot(), ref_arg(target))  # before any import
    from modelbox import artifacts

    added = artifacts.add(
        ctx.registry, ref_arg(target), list(paths),
        file_type=FileType(file_type) if file_type else None, name=name,
        replace=replace, progress=_progress(quiet),
    )
    if as_json:
        emit_json([a.to_json() for a in added])
        return
    for a in added:
        echo(f"Added {a.parent}/{a.path} sha256:{a.checksum} ({a.size} bytes)")
    from modelbox.cli.lifecycle_cmds import report_decisions

    report_decisions(ctx)  # what an experiment policy did after files reached a checkpoint


@artifact.command("track")
@click.argument("target", metavar="MODEL|MODEL@VERSION|MODEL:TAG", shell_complete=complete_ref)
@click.argument("uris", nargs=-1, required=True)
@click.option("--as", "name", help="Artifact path in the registry (default: the URI's file "
              "name); one URI only.")
@_replace
@click.option("--no-check", is_flag=True,
              help="Record the URI without contacting its store (size and checksum unknown).")
@json_option
@pass_ctx
def artifact_track(
    ctx: Context, target: str, uris: tuple[str, ...], name: str | None, replace: bool,
    no_check: bool, as_json: bool,
) -> None:
    """Record files that stay where they are (s3://, gs://, https://...)."""
    releases.refuse_frozen(ctx.registry.snapshot(), ref_arg(target))
    from modelbox import artifacts
    from modelbox.errors import InvalidValueError

    if name is not None and len(uris) != 1:
        raise InvalidValueError("--as names one artifact; give a single URI")
    tracked = artifacts.track(ctx.registry, ref_arg(target), list(uris),
                              names=None if name is None else [name], replace=replace,
                              check=not no_check)
    if as_json:
        emit_json([a.to_json() for a in tracked])
        return
    for a in tracked:
        if a.verified:
            echo(f"Tracked {a.uri} as {a.path} ({a.size} bytes, etag {a.etag or '-'})")
        else:
            echo(f"Tracked {a.uri} as {a.path} (not checked: size and checksum unknown)")


@artifact.command("remove")
@click.argument("target", metavar="MODEL|MODEL@VERSION|MODEL:TAG", shell_complete=complete_ref)
@click.argument("names", nargs=-1, required=True)
@json_option
@pass_ctx
def artifact_remove(ctx: Context, target: str, names: tuple[str, ...], as_json: bool) -> None:
    """Remove artifacts by path (one commit; history and the store keep the content)."""
    releases.refuse_frozen(ctx.registry.snapshot(), ref_arg(target))
    from modelbox import artifacts

    artifacts.remove(ctx.registry, ref_arg(target), list(names))
    removed = list(dict.fromkeys(names))
    done(as_json, {"target": target, "removed": removed},
         "\n".join(f"Removed {target}/{name}" for name in removed))


@artifact.command("list")
@click.argument("target", metavar="MODEL|MODEL@VERSION|MODEL:TAG", shell_complete=complete_ref)
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
        size = a.size if a.verified else "?"  # tracked with --no-check: not known
        mime = getattr(a.mime_type, "value", a.mime_type)
        echo(f"{a.path}\t{a.checksum or a.uri}\t{size}\t{a.file_type.value}\t{mime}")


@click.command()
@click.argument("target", metavar="MODEL@VERSION|MODEL:TAG", shell_complete=complete_ref)
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), default=".",
              show_default=True, help="Folder to place the artifacts in.")
@click.option("--verify", is_flag=True, help="Re-hash cached objects before using them.")
@_quiet
@json_option
@pass_ctx
def get(ctx: Context, target: str, out: Path, verify: bool, quiet: bool, as_json: bool) -> None:
    """Download a version's artifacts, verified, each file whole or not at all."""
    from modelbox import artifacts

    ref = version_ref_arg(ctx, target)
    name = target_name(ctx, ref)
    notes: list[str] = []
    placed = artifacts.get(ctx.registry, ref, out, progress=_progress(quiet), verify=verify,
                           notes=notes)
    for note in notes:
        echo(note, err=True)
    if as_json:
        emit_json({"target": name, "out": str(out), "files": [str(p) for p in placed]})
        return
    echo(f"Placed {len(placed)} file(s) in {out}")


COMMANDS = [artifact, get]
