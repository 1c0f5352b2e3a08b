"""``modelbox namespace list``, ``show`` and ``set-owner``."""

from __future__ import annotations

import click

from modelbox.cli._common import Context, done, echo, emit_json, json_option, pass_ctx


@click.group()
def namespace() -> None:
    """List namespaces and set who owns them (namespaces exist implicitly)."""


def _owners(owners: tuple[str, ...], owners_from: str | None, name: str) -> str:
    if not owners:
        return "-"
    return " ".join(owners) + ("" if owners_from == name else f" (from {owners_from})")


@namespace.command("list")
@json_option
@pass_ctx
def namespace_list(ctx: Context, as_json: bool) -> None:
    """List namespaces with the models, collections and versions directly in each, and the
    owners that apply (inherited ones say from where)."""
    from modelbox.namespaces import list_namespaces

    found = list_namespaces(ctx.registry.snapshot())
    if as_json:
        emit_json([space.to_json() for space in found])
        return
    for space in found:
        echo(f"{space.name}\t{len(space.models)} model(s)\t{space.versions} version(s)\t"
             f"{len(space.collections)} collection(s)\t"
             f"{_owners(space.effective_owners, space.owners_from, space.name)}")


@namespace.command("show")
@click.argument("name", metavar="NAMESPACE")
@json_option
@pass_ctx
def namespace_show(ctx: Context, name: str, as_json: bool) -> None:
    """Show a namespace: owners, models, collections and the namespaces below it."""
    from modelbox.namespaces import show

    space = show(ctx.registry.snapshot(), name)
    if as_json:
        emit_json(space.to_json(detail=True))
        return
    echo(f"namespace: {space.name}")
    echo(f"owners: {_owners(space.effective_owners, space.owners_from, space.name)}")
    echo(f"models: {', '.join(space.models) or '-'}")
    echo(f"versions: {space.versions}")
    echo(f"collections: {', '.join(space.collections) or '-'}")
    echo(f"namespaces: {', '.join(space.namespaces) or '-'}")


@namespace.command("set-owner")
@click.argument("name", metavar="NAMESPACE")
@click.argument("owners", nargs=-1, metavar="OWNER...")
@click.option("--clear", is_flag=True, help="Remove its owners (it inherits its parent's).")
@json_option
@pass_ctx
def namespace_set_owner(
    ctx: Context, name: str, owners: tuple[str, ...], clear: bool, as_json: bool,
) -> None:
    """Set who owns NAMESPACE: users (@alice), teams (@org/team) or emails, as CODEOWNERS
    names them. Nested namespaces inherit them; a model's own owner overrides them
    (`modelbox codeowners`)."""
    from modelbox.names import parse_namespace
    from modelbox.namespaces import set_owners

    if bool(owners) == clear:
        raise click.UsageError("give the owners (@team, @user, an email), or --clear")
    written = set_owners(ctx.registry, name, owners)
    space = parse_namespace(name)
    done(as_json, {"namespace": space, "owners": written},
         f"Set the owners of {space}: {' '.join(written)}" if written
         else f"Cleared the owners of {space}")


COMMANDS = [namespace]
