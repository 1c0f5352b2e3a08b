"""``modelbox version ...`` and ``modelbox meta ...``."""

from __future__ import annotations

from typing import Any

import click

from modelbox.cli._common import (
    Context,
    echo,
    emit_json,
    json_option,
    model_arg,
    parse_json_value,
    parse_meta,
    pass_ctx,
    ref_arg,
)
from modelbox.frameworks import MLFramework
from modelbox.names import Reference


@click.group()
def version() -> None:
    """Create, list, show, archive and delete model versions."""


@version.command("create")
@click.argument("model")
@click.argument("version_name", metavar="VERSION")
@click.option("--name", help="Display name (default: the model's name).")
@click.option("--description", default="")
@click.option(
    "--framework", default="unknown", help=f"One of: {', '.join(f.value for f in MLFramework)}."
)
@click.option("--meta", "meta", multiple=True, metavar="KEY=VALUE", help="Metadata (repeatable).")
@click.option("--tag", "tags", multiple=True, help="A unique tag to give it (repeatable).")
@click.option("--from", "source", metavar="MODEL@VERSION",
              help="Copy that version's artifact pointers (nothing is uploaded).")
@pass_ctx
def version_create(
    ctx: Context, model: str, version_name: str, name: str | None, description: str,
    framework: str, meta: tuple[str, ...], tags: tuple[str, ...], source: str | None,
) -> None:
    """Create VERSION of MODEL (open: artifacts can be added until it is released)."""
    created = ctx.registry.create_version(
        model_arg(model), version_name, name=name, description=description,
        framework=framework, metadata=parse_meta(meta), tags=list(tags),
        copy_from=ref_arg(source) if source is not None else None,
    )
    origin = f" from {created.metadata['source_version']}" if source is not None else ""
    echo(f"Created version {created.model}@{created.version}{origin}")


@version.command("release")
@click.argument("ref", metavar="MODEL@VERSION|MODEL:TAG")
@json_option
@pass_ctx
def version_release(ctx: Context, ref: str, as_json: bool) -> None:
    """Release a version: record the digest of its artifacts and freeze them."""
    parsed, resolved = _version_ref(ctx, ref)
    release = ctx.registry.release_version(parsed.model, resolved)
    if as_json:
        emit_json({"version": f"{parsed.model}@{resolved}", **release.model_dump(mode="json")})
        return
    echo(f"Released {parsed.model}@{resolved} ({release.digest}, by {release.by})")


@version.command("list")
@click.argument("model")
@click.option("--all", "archived", is_flag=True, help="Include archived versions.")
@json_option
@pass_ctx
def version_list(ctx: Context, model: str, archived: bool, as_json: bool) -> None:
    """List the versions of MODEL, oldest first, with their tags."""
    registry, name = ctx.registry, model_arg(model)
    versions = registry.list_versions(name, archived=archived)
    by_version: dict[str, list[str]] = {}
    for tag, tagged in sorted(registry.tags(name).items()):
        by_version.setdefault(tagged, []).append(tag)
    if as_json:
        emit_json([
            {**v.model_dump(mode="json"), "tags": by_version.get(v.version, [])} for v in versions
        ])
        return
    for v in versions:
        tags = ",".join(by_version.get(v.version, []))
        echo(f"{v.version}\t{v.framework.value}\t{v.created_at.isoformat()}\t{tags}")


def _show(ctx: Context, ref: Reference) -> dict[str, Any]:
    registry = ctx.registry
    resolved = registry.resolve(ref)
    manifest = registry.get_version(ref.model, resolved)
    tags = sorted(t for t, v in registry.tags(ref.model).items() if v == resolved)
    return {**manifest.model_dump(mode="json"), "tags": tags}


@version.command("show")
@click.argument("ref", metavar="MODEL@VERSION|MODEL:TAG")
@json_option
@pass_ctx
def version_show(ctx: Context, ref: str, as_json: bool) -> None:
    """Show one version."""
    document = _show(ctx, ref_arg(ref))
    if as_json:
        emit_json(document)
        return
    for key, value in document.items():
        if key != "kind":
            echo(f"{key}: {value}")


def _version_ref(ctx: Context, ref: str) -> tuple[Reference, str]:
    parsed = ref_arg(ref)
    return parsed, ctx.registry.resolve(parsed)


@version.command("archive")
@click.argument("ref", metavar="MODEL@VERSION|MODEL:TAG")
@pass_ctx
def version_archive(ctx: Context, ref: str) -> None:
    """Archive a version: hidden from lists, its tags removed, kept in history."""
    parsed, resolved = _version_ref(ctx, ref)
    ctx.registry.archive_version(parsed.model, resolved)
    echo(f"Archived {parsed.model}@{resolved}")


@version.command("restore")
@click.argument("ref", metavar="MODEL@VERSION")
@pass_ctx
def version_restore(ctx: Context, ref: str) -> None:
    """Bring an archived version back."""
    parsed, resolved = _version_ref(ctx, ref)
    ctx.registry.archive_version(parsed.model, resolved, archived=False)
    echo(f"Restored {parsed.model}@{resolved}")


@version.command("delete")
@click.argument("ref", metavar="MODEL@VERSION|MODEL:TAG")
@click.option("--force", is_flag=True, help="Delete even if tagged (the tags go too).")
@pass_ctx
def version_delete(ctx: Context, ref: str, force: bool) -> None:
    """Remove a version from the registry branch (Git history keeps it)."""
    parsed, resolved = _version_ref(ctx, ref)
    ctx.registry.delete_version(parsed.model, resolved, force=force)
    echo(f"Deleted {parsed.model}@{resolved}")


@click.group()
def meta() -> None:
    """Set or remove metadata on a model or version."""


@meta.command("set")
@click.argument("target", metavar="MODEL|MODEL@VERSION|MODEL:TAG")
@click.argument("key")
@click.argument("value", metavar="JSON_VALUE")
@pass_ctx
def meta_set(ctx: Context, target: str, key: str, value: str) -> None:
    """Set KEY to JSON_VALUE (e.g. 40, true, '"coco-2017"', '{"a": 1}')."""
    ctx.registry.set_metadata(ref_arg(target), key, parse_json_value(value))
    echo(f"Set {key} on {target}")


@meta.command("unset")
@click.argument("target", metavar="MODEL|MODEL@VERSION|MODEL:TAG")
@click.argument("key")
@pass_ctx
def meta_unset(ctx: Context, target: str, key: str) -> None:
    """Remove KEY."""
    ctx.registry.unset_metadata(ref_arg(target), key)
    echo(f"Removed {key} from {target}")


COMMANDS = [version, meta]
