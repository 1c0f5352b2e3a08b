"""``modelbox init`` and ``modelbox model ...``."""

from __future__ import annotations

from pathlib import Path

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
    show_value,
)
from modelbox.cli._removed import report_removed


@click.command()
@click.argument("path", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--store", help="Shared object store URL (s3://bucket/prefix, ...).")
@click.option("--branch", help="Registry branch (default: the current branch, else main).")
@click.option("--git-tags", is_flag=True,
              help="Also make GTO-format Git tags (refs/tags/...) for every registration "
                   "and tag move, for forges and CI (docs/gto.md).")
@json_option
def init(path: Path, store: str | None, branch: str | None, git_tags: bool,
         as_json: bool) -> None:
    """Create a registry in PATH (a new folder or an existing Git repository)."""
    from modelbox.registry import Registry

    registry = Registry.init(path, store=store, branch=branch, git_tags=git_tags)
    done(as_json, {"registry": str(path), "branch": registry.branch, "store": store,
                   "git_tags": git_tags},
         f"Initialized modelbox registry in {path} (branch {registry.branch})")
    registry.close()


@click.group()
def model() -> None:
    """Create, list and show models."""


@model.command("create")
@click.argument("name")
@click.option("--owner", default="", help="Who owns the model (an email, a team).")
@click.option("--task", default="", help="The task its versions solve.")
@click.option("--description", default="")
@click.option("--dataset", "datasets", multiple=True, help="An evaluation dataset (repeatable).")
@click.option("--meta", "meta", multiple=True, metavar="KEY=VALUE", help="Metadata (repeatable).")
@json_option
@pass_ctx
def model_create(
    ctx: Context, name: str, owner: str, task: str, description: str,
    datasets: tuple[str, ...], meta: tuple[str, ...], as_json: bool,
) -> None:
    """Create model NAME (NAMESPACE/NAME; a bare NAME goes to namespace `default`)."""
    created = ctx.registry.create_model(
        model_arg(name), owner=owner, task=task, description=description,
        metadata=parse_meta(meta), datasets=list(datasets),
    )
    done(as_json, created.model_dump(mode="json"), f"Created model {created.full_name}")


@model.command("update")
@click.argument("name")
@click.option("--owner")
@click.option("--task")
@click.option("--description")
@click.option("--dataset", "datasets", multiple=True, help="Replace the evaluation datasets.")
@json_option
@pass_ctx
def model_update(
    ctx: Context, name: str, owner: str | None, task: str | None, description: str | None,
    datasets: tuple[str, ...], as_json: bool,
) -> None:
    """Change a model's owner, task, description or evaluation datasets."""
    updated = ctx.registry.update_model(
        model_arg(name), owner=owner, task=task, description=description,
        datasets=list(datasets) or None,
    )
    done(as_json, updated.model_dump(mode="json"), f"Updated model {name}")


@model.command("list")
@click.option("--namespace", help="Only this namespace and those below it.")
@click.option("--exact", is_flag=True,
              help="With --namespace: only the models directly in it (seed 003's ListModels).")
@json_option
@pass_ctx
def model_list(ctx: Context, namespace: str | None, exact: bool, as_json: bool) -> None:
    """List models (collections: `modelbox collection list`)."""
    if exact and namespace is None:
        raise click.UsageError("--exact needs --namespace NS")
    from modelbox.listing import model_documents

    models = [m for m in model_documents(ctx.registry.snapshot(), namespace)
              if not m.get("collection")]
    if exact:
        from modelbox.names import parse_namespace

        models = [m for m in models if m["namespace"] == parse_namespace(namespace or "")]
    if as_json:
        emit_json(models)
        return
    if models:  # one write for thousands of lines (echo flushes each call)
        echo("\n".join(f"{m['namespace']}/{m['name']}\t{m['owner']}\t{m['task']}"
                        for m in models))


@model.command("show")
@click.argument("name")
@json_option
@pass_ctx
def model_show(ctx: Context, name: str, as_json: bool) -> None:
    """Show a model, its tags and its versions."""
    registry, ref = ctx.registry, model_arg(name)
    manifest = registry.get_model(ref)
    tags = registry.tags(ref)
    versions = [v.version for v in registry.list_versions(ref)]
    from modelbox.changed import updated_at

    document = {**manifest.model_dump(mode="json"),
                "updated_at": updated_at(registry, str(ref), manifest.created_at).isoformat()}
    if as_json:
        emit_json({**document, "tags": tags, "versions": versions})
        return
    for key, value in document.items():
        if key != "kind":
            echo(f"{key}: {show_value(value)}")
    echo(f"tags: {', '.join(f'{t} -> {v}' for t, v in sorted(tags.items())) or '-'}")
    echo(f"versions: {', '.join(versions) or '-'}")


@model.command("delete")
@click.argument("name")
@click.option("--force", is_flag=True, help="Delete even if versions are tagged (the tags "
              "go) or linked from a collection (the links dangle).")
@json_option
@pass_ctx
def model_delete(ctx: Context, name: str, force: bool, as_json: bool) -> None:
    """Delete model NAME and all its versions in one commit (Git history keeps them)."""
    from modelbox.removal import delete_model

    removed = delete_model(ctx.registry, model_arg(name), force=force)
    report_removed("model", removed, as_json)


COMMANDS = [init, model]
