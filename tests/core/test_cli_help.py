"""Every command and subcommand of the CLI has help, and the CLI's exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click
import pytest

from modelbox.cli import cli

if TYPE_CHECKING:
    from conftest import Run


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path below ``group``, groups included (``("refs", "sync")``)."""
    paths = []
    for name, command in sorted(group.commands.items()):
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths.extend(command_paths(command, (*prefix, name)))
    return paths


COMMANDS = command_paths(cli)


def test_the_cli_has_the_commands_of_the_issue() -> None:
    for path in [("init",), ("model", "create"), ("model", "list"), ("model", "show"),
                 ("version", "create"), ("version", "list"), ("version", "show"), ("tag",),
                 ("untag",), ("resolve",), ("meta", "set"), ("log",), ("check",),
                 ("refs", "sync")]:
        assert path in COMMANDS


@pytest.mark.parametrize("path", [(), *COMMANDS], ids=["modelbox", *map(" ".join, COMMANDS)])
def test_every_command_has_help(run: Run, path: tuple[str, ...]) -> None:
    result = run(*path, "--help")
    assert result.code == 0, result
    assert result.out.startswith("Usage: modelbox")
    assert result.err == ""
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    assert command.help, f"modelbox {' '.join(path)} has no help text"


@pytest.mark.smoke
def test_version_option_prints_the_version(run: Run) -> None:
    result = run("--version")
    assert result.code == 0
    assert "0.1.0" in result.out


@pytest.mark.smoke
def test_a_bare_group_shows_its_usage(run: Run) -> None:
    result = run("model")
    assert result.code in (0, 2)
    assert "Usage: modelbox model" in result.out + result.err


@pytest.mark.parametrize(
    "argv",
    [("model", "list", "--json"), ("model", "show", "m", "--json"),
     ("version", "list", "m", "--json"), ("version", "show", "m@v1", "--json"),
     ("log", "--json"), ("check", "--json"), ("refs", "sync", "--json")],
)
def test_listing_and_show_commands_print_one_json_document(
    registry_path: Path, run: Run, argv: tuple[str, ...]
) -> None:
    assert run("--repo", registry_path, "model", "create", "m").code == 0
    assert run("--repo", registry_path, "version", "create", "m", "v1", "--tag", "t").code == 0
    result = run("--repo", registry_path, *argv)
    assert result.code == 0, result
    json.loads(result.out)
