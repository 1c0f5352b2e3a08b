"""``modelbox version ...`` and ``modelbox meta ...``."""

from __future__ import annotations

from typing import Any

import click

from modelbox.cli._common import (
    Context,
    done,
    echo,
    emit_json,
    json_option,
    model_arg,
    parse_json_value,
    parse_meta,
    pass_ctx,
    ref_arg,
    show_value,
    target_name,
)
from modelbox.cli.completion import complete_model, complete_ref
from modelbox.frameworks import MLFramework
from modelbox.names import Reference


@click.group()
def version() -> None:
    """Create, list, show, archive and delete model versions."""


@version.command("create")
@click.argument("model", shell_complete=complete_model)
@click.argument("version_name", metavar="[VERSION]", required=False)
@click.option("--name", help="Display name (default: the model's name).")
@click.option("--description", default="")
@click.option(
    "--framework", default="unknown", help=f"One of: {', '.join(f.value for f in MLFramework)}."
)
@click.option("--meta", "meta", multiple=True, metavar="KEY=VALUE", help="Metadata (repeatable).")
@click.option("--tag", "tags", multiple=True, help="A unique tag to give it (repeatable).")
@click.option("--from", "source", metavar="MODEL@VERSION",
              help="Copy that version's artifact pointers (nothing is uploaded).")
@json_option
@pass_ctx
def version_create(
    ctx: Context, model: str, version_name: str | None, name: str | None, description: str,
    framework: str, meta: tuple[str, ...], tags: tuple[str, ...], source: str | None,
    as_json: bool,
) -> None:
    """Create VERSION of MODEL (open: artifacts can be added until it is released).

    With no VERSION it is named vN, one more than the highest vN of MODEL (v0 first)."""
    created = ctx.registry.create_version(
        model_arg(model), version_name, name=name, description=description,
        framework=framework, metadata=parse_meta(meta), tags=list(tags),
        copy_from=ref_arg(source) if source is not None else None,
    )
    origin = f" from {created.metadata['source_version']}" if source is not None else ""
    done(as_json, {**created.model_dump(mode="json"), "tags": list(dict.fromkeys(tags))},
         f"Created version {created.model}@{created.version}{origin}")


@version.command("release")
@click.argument("ref", metavar="MODEL@VERSION|MODEL:TAG", shell_complete=complete_ref)
@json_option
@pass_ctx
def version_release(ctx: Context, ref: str, as_json: bool) -> None:
    """Release a version: record the digest of its artifacts and freeze them."""
    parsed, resolved = _version_ref(ctx, ref)
    release = ctx.registry.release_version(parsed.model, resolved)
    done(as_json, {"version": f"{parsed.model}@{resolved}", **release.model_dump(mode="json")},
         f"Released {parsed.model}@{resolved} ({release.digest}, by {release.by})")


@version.command("list")
@click.argument("model", shell_complete=complete_model)
@click.option("--all", "archived", is_flag=True,
              help="Include archived versions (marked `archived` in a fifth column).")
@json_option
@pass_ctx
def version_list(ctx: Context, model: str, archived: bool, as_json: bool) -> None:
    """List the versions of MODEL, oldest first, with their tags.

    Columns: version, framework, created, tags; with --all a fifth says `archived` or `-`
    (--json: every entry has "archived")."""
    from modelbox import isotime
    from modelbox.listing import version_documents

    every, tag_map = version_documents(ctx.registry, model_arg(model))
    versions = [v for v in every if archived or not v.get("archived")]
    by_version: dict[str, list[str]] = {}
    for tag, tagged in sorted(tag_map.items()):
        by_version.setdefault(tagged, []).append(tag)
    if as_json:
        emit_json([{**v, "tags": by_version.get(v["version"], [])} for v in versions])
        return
    for v in versions:
        tags = ",".join(by_version.get(v["version"], []))
        created = isotime.parse(v["created_at"]).isoformat()
        state = ("\tarchived" if v.get("archived") else "\t-") if archived else ""
        echo(f"{v['version']}\t{v['framework']}\t{created}\t{tags}{state}")


def _show(ctx: Context, ref: Reference) -> dict[str, Any]:
    registry = ctx.registry
    resolved = registry.resolve(ref)
    manifest = registry.get_version(ref.model, resolved)
    tags = sorted(t for t, v in registry.tags(ref.model).items() if v == resolved)
    from modelbox.changed import updated_at
    from modelbox.collections import links_to

    target = f"{ref.model}@{resolved}"
    changed = updated_at(registry, target, manifest.created_at)
    return {**manifest.model_dump(mode="json"), "updated_at": changed.isoformat(), "tags": tags,
            "collections": links_to(registry.snapshot(), target)}


@version.command("show")
@click.argument("ref", metavar="MODEL@VERSION|MODEL:TAG", shell_complete=complete_ref)
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
            echo(f"{key}: {show_value(value)}")


def _version_ref(ctx: Context, ref: str) -> tuple[Reference, str]:
    parsed = ref_arg(ref)
    return parsed, ctx.registry.resolve(parsed)


@version.command("archive")
@click.argument("ref", metavar="MODEL@VERSION|MODEL:TAG", shell_complete=complete_ref)
@click.option("--force", is_flag=True, help="Archive even if tagged (the tags are removed).")
@json_option
@pass_ctx
def version_archive(ctx: Context, ref: str, force: bool, as_json: bool) -> None:
    """Archive a version: hidden from lists, its tags removed, kept in history.

    A tagged version needs --force; links to it stay valid."""
    parsed, resolved = _version_ref(ctx, ref)
    dropped = ctx.registry.archive_version(parsed.model, resolved, force=force)
    done(as_json, {"version": f"{parsed.model}@{resolved}", "archived": True,
                   "tags_removed": list(dropped)},
         f"Archived {parsed.model}@{resolved}"
         + (f"; removed its tags {', '.join(dropped)} (links to it stay valid)"
            if dropped else ""))


@version.command("restore")
@click.argument("ref", metavar="MODEL@VERSION", shell_complete=complete_ref)
@json_option
@pass_ctx
def version_restore(ctx: Context, ref: str, as_json: bool) -> None:
    """Bring an archived version back."""
    parsed, resolved = _version_ref(ctx, ref)
    ctx.registry.archive_version(parsed.model, resolved, archived=False)
    done(as_json, {"version": f"{parsed.model}@{resolved}", "archived": False},
         f"Restored {parsed.model}@{resolved}")


@version.command("delete")
@click.argument("ref", metavar="MODEL@VERSION|MODEL:TAG", shell_complete=complete_ref)
@click.option("--force", is_flag=True,
              help="Delete even if tagged (the tags go too) or linked (the links dangle).")
@json_option
@pass_ctx
def version_delete(ctx: Context, ref: str, force: bool, as_json: bool) -> None:
    """Remove a version from the registry branch (Git history keeps it)."""
    from modelbox.registry import in_use

    parsed, resolved = _version_ref(ctx, ref)
    tags, links = ctx.registry.delete_version(parsed.model, resolved, force=force)
    consequences = in_use(tags, links, done=True)
    done(as_json, {"version": f"{parsed.model}@{resolved}", "deleted": True,
                   "tags_removed": list(tags), "links_dangling": list(links)},
         f"Deleted {parsed.model}@{resolved}"
         + ("; " + " and ".join(consequences) if consequences else ""))


@click.group()
def meta() -> None:
    """Set or remove metadata on a model or version."""


@meta.command("set")
@click.argument("target", metavar="MODEL|MODEL@VERSION|MODEL:TAG", shell_complete=complete_ref)
@click.argument("key")
@click.argument("value", metavar="JSON_VALUE")
@json_option
@pass_ctx
def meta_set(ctx: Context, target: str, key: str, value: str, as_json: bool) -> None:
    """Set KEY to JSON_VALUE (e.g. 40, true, '"coco-2017"', '{"a": 1}')."""
    ref, parsed = ref_arg(target), parse_json_value(value)
    name = target_name(ctx, ref)
    ctx.registry.set_metadata(ref, key, parsed)
    done(as_json, {"target": name, "key": key, "value": parsed}, f"Set {key} on {target}")


@meta.command("unset")
@click.argument("target", metavar="MODEL|MODEL@VERSION|MODEL:TAG", shell_complete=complete_ref)
@click.argument("key")
@json_option
@pass_ctx
def meta_unset(ctx: Context, target: str, key: str, as_json: bool) -> None:
    """Remove KEY."""
    ref = ref_arg(target)
    name = target_name(ctx, ref)
    ctx.registry.unset_metadata(ref, key)
    done(as_json, {"target": name, "key": key, "removed": True},
         f"Removed {key} from {target}")


COMMANDS = [version, meta]
