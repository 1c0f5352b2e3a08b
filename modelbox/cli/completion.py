"""``modelbox completion bash|zsh|fish`` and the completions of model references.

Shell completion is click's: the shell calls ``modelbox`` with ``_MODELBOX_COMPLETE`` set
and click asks the arguments' ``shell_complete`` callbacks below. They read the registry
branch the command would read (``--repo``, ``--branch``), through the Git snapshot and
plain JSON -- no pydantic -- and never raise: outside a registry, or on a broken one,
there is simply nothing to complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from click.shell_completion import CompletionItem, get_completion_class

from modelbox import layout
from modelbox.cli._common import echo, emit_json, json_option
from modelbox.documents import parse_tags
from modelbox.errors import ModelboxError
from modelbox.names import ModelName, parse_model

if TYPE_CHECKING:
    from modelbox.refs.repo import Snapshot

SHELLS = ("bash", "zsh", "fish")
PROG_NAME = "modelbox"
COMPLETE_VAR = "_MODELBOX_COMPLETE"

# Tags every model has without storing them (see modelbox.resolver).
_COMPUTED_TAGS = ("latest",)


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@json_option
@click.pass_context
def completion(ctx: click.Context, shell: str, as_json: bool) -> None:
    """Print the completion script for SHELL.

    \b
    bash:  eval "$(modelbox completion bash)"   (in ~/.bashrc)
    zsh:   eval "$(modelbox completion zsh)"    (in ~/.zshrc)
    fish:  modelbox completion fish > ~/.config/fish/completions/modelbox.fish

    Models, versions (MODEL@...) and tags (MODEL:...) complete from the registry.
    """
    script = completion_script(ctx.find_root().command, shell)
    if as_json:
        emit_json({"shell": shell, "script": script})
    else:
        echo(script)


def completion_script(cli: click.Command, shell: str) -> str:
    cls = get_completion_class(shell)
    if cls is None:  # click.Choice let only SHELLS through
        raise click.BadParameter(f"no completion for {shell!r}")
    return cls(cli, {}, PROG_NAME, COMPLETE_VAR).source()


def _models(snap: Snapshot) -> list[str]:
    from modelbox.listing import model_names

    return model_names(snap)


def _tags(snap: Snapshot, model: ModelName) -> list[str]:
    if snap.read(layout.model_file(model)) is None:
        return []
    path = layout.tags_file(model)
    data = snap.read(path)
    return sorted({*(parse_tags(path, data) if data is not None else {}), *_COMPUTED_TAGS})


def _candidates(ctx: click.Context, incomplete: str, *, refs: bool) -> list[str]:
    """``M`` -> models; with ``refs``, ``M@`` -> its versions and ``M:`` -> its tags."""
    from modelbox.locations import is_url
    from modelbox.registry import Registry

    params = ctx.find_root().params
    repo = params.get("repo")
    if repo is not None and is_url(repo):
        return []  # completing never fetches: a keystroke must not wait on the network
    try:
        registry = Registry.open(Path(repo) if repo is not None else None)
        try:
            registry.target_branch = params.get("branch")
            words = _words(registry.snapshot(), incomplete, refs=refs)
        finally:
            registry.close()
    # No registry (RegistryNotFoundError), a broken one (ManifestError), an unreadable
    # folder, a word that is no name: nothing to complete -- a traceback would land in the prompt.
    except (ModelboxError, OSError, ValueError, KeyError):
        return []
    return [word for word in words if word.startswith(incomplete)]


def _words(snap: Snapshot, incomplete: str, *, refs: bool) -> list[str]:
    if refs and ("@" in incomplete or ":" in incomplete):
        sep = "@" if "@" in incomplete else ":"
        model = parse_model(incomplete.partition(sep)[0])
        if sep == "@":
            listing = snap.listdir(layout.versions_dir(model))
            names = sorted(name for name, is_dir in listing if is_dir)
        else:
            names = _tags(snap, model)
        return [f"{model}{sep}{name}" for name in names]
    return _models(snap)


def complete_model(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[
    CompletionItem
]:
    """Completion of a MODEL argument."""
    return [CompletionItem(word) for word in _candidates(ctx, incomplete, refs=False)]


def complete_ref(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[
    CompletionItem
]:
    """Completion of MODEL, MODEL@VERSION and MODEL:TAG arguments."""
    return [CompletionItem(word) for word in _candidates(ctx, incomplete, refs=True)]


COMMANDS = [completion]
