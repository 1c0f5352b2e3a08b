"""``modelbox collection create``, ``list``, ``delete``, ``link``, ``unlink``, ``lineage``."""

from __future__ import annotations

import click

from modelbox.cli._common import (
    Context,
    done,
    echo,
    emit_json,
    json_option,
    model_arg,
    parse_meta,
    pass_ctx,
    ref_arg,
    target_name,
)
from modelbox.cli._removed import report_removed


@click.group()
def collection() -> None:
    """Create collections: curated models whose versions link versions of other models."""


@collection.command("create")
@click.argument("name")
@click.option("--owner", default="", help="Who owns the collection (an email, a team).")
@click.option("--description", default="")
@click.option("--display-name", "display", default="",
              help='Its name for people, spaces allowed ("MNIST Grayscale 28x28").')
@click.option("--meta", "meta", multiple=True, metavar="KEY=VALUE", help="Metadata (repeatable).")
@json_option
@pass_ctx
def collection_create(
    ctx: Context, name: str, owner: str, description: str, display: str,
    meta: tuple[str, ...], as_json: bool,
) -> None:
    """Create collection NAME (addressed like a model: NAMESPACE/NAME)."""
    from modelbox.collections import create_collection

    created = create_collection(ctx.registry, model_arg(name), owner=owner,
                                description=description, metadata=parse_meta(meta),
                                display=display)
    done(as_json, created.model_dump(mode="json"), f"Created collection {created.full_name}")


@collection.command("list")
@click.option("--namespace", help="Only this namespace and those below it.")
@json_option
@pass_ctx
def collection_list(ctx: Context, namespace: str | None, as_json: bool) -> None:
    """List collections, with how many links each holds."""
    from modelbox.collections import links_in

    found = [m for m in ctx.registry.list_models(namespace) if m.collection]
    snap = ctx.registry.snapshot()
    counts = {m.full_name: len(links_in(snap, model_arg(m.full_name))) for m in found}
    if as_json:
        emit_json([{**m.model_dump(mode="json"), "links": counts[m.full_name]} for m in found])
        return
    for m in found:
        echo(f"{m.full_name}\t{m.display_name}\t{m.owner}\t{counts[m.full_name]} link(s)"
             f"\t{m.description}")


@collection.command("delete")
@click.argument("name")
@click.option("--force", is_flag=True, help="Delete even if its links are tagged (the tags "
              "go) or linked from another collection (those links dangle).")
@json_option
@pass_ctx
def collection_delete(ctx: Context, name: str, force: bool, as_json: bool) -> None:
    """Delete collection NAME and its links in one commit (the linked versions stay)."""
    from modelbox.removal import delete_model

    removed = delete_model(ctx.registry, model_arg(name), force=force, collection=True)
    report_removed("collection", removed, as_json)


@click.command()
@click.argument("source", metavar="MODEL@VERSION|MODEL:TAG")
@click.argument("target", metavar="COLLECTION")
@click.option("--version", "version", help="The link's version (default: the next vN).")
@click.option("--tag", "tags", multiple=True, help="A unique tag to give it (repeatable).")
@click.option("--description", default="")
@click.option("--meta", "meta", multiple=True, metavar="KEY=VALUE", help="Metadata (repeatable).")
@json_option
@pass_ctx
def link(
    ctx: Context, source: str, target: str, version: str | None, tags: tuple[str, ...],
    description: str, meta: tuple[str, ...], as_json: bool,
) -> None:
    """Link the version SOURCE into COLLECTION as its next version (no object is copied)."""
    from modelbox.collections import link as make_link

    created = make_link(ctx.registry, ref_arg(source), model_arg(target), version=version,
                        tags=list(tags), description=description, metadata=parse_meta(meta))
    done(as_json, {**created.model_dump(mode="json"), "tags": list(dict.fromkeys(tags))},
         f"Linked {created.link} as {created.model}@{created.version}")


@click.command()
@click.argument("ref", metavar="COLLECTION@VERSION|COLLECTION:TAG")
@click.option("--force", is_flag=True, help="Unlink even if tagged (the tags go too) or linked.")
@json_option
@pass_ctx
def unlink(ctx: Context, ref: str, force: bool, as_json: bool) -> None:
    """Remove a link from its collection (Git history keeps it; the source stays)."""
    from modelbox.collections import unlink as remove_link

    parsed = ref_arg(ref)
    name = target_name(ctx, parsed)
    source = remove_link(ctx.registry, parsed, force=force)
    done(as_json, {"link": name, "source": source, "removed": True},
         f"Unlinked {ref} (was {source})")


@click.command()
@click.argument("target", metavar="MODEL@VERSION|MODEL:TAG")
@json_option
@pass_ctx
def lineage(ctx: Context, target: str, as_json: bool) -> None:
    """Where TARGET came from: link -> source version -> checkpoint -> experiment."""
    from modelbox.lineage import lineage as walk
    from modelbox.lineage import render

    nodes = walk(ctx.registry, ref_arg(target))
    if as_json:
        emit_json({"target": target, "lineage": [n.to_json() for n in nodes]})
        return
    echo(render(nodes))


COMMANDS = [collection, link, unlink, lineage]
