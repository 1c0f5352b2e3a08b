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


def subcommand(group: click.Group, name: str) -> click.Command:
    """``group``'s command ``name``, loaded as the command line loads it."""
    command = group.get_command(click.Context(group), name)
    assert command is not None, name
    return command


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path below ``group``, groups included (``("refs", "sync")``)."""
    paths = []
    for name in group.list_commands(click.Context(group)):
        paths.append((*prefix, name))
        command = subcommand(group, name)
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
        command = subcommand(command, name)
    assert command.help, f"modelbox {' '.join(path)} has no help text"


def test_the_table_of_command_modules_is_what_each_module_defines() -> None:
    import importlib

    from modelbox.cli import MODULES

    package = Path(importlib.import_module("modelbox.cli").__file__ or "").parent
    defining = {path.stem for path in package.glob("*.py")
                if "\nCOMMANDS = " in path.read_text(encoding="utf-8")}
    assert defining == set(MODULES)
    for module, names in MODULES.items():
        commands = importlib.import_module(f"modelbox.cli.{module}").COMMANDS
        assert sorted(c.name for c in commands) == sorted(names), module


def test_a_command_loads_only_its_own_module() -> None:
    import subprocess
    import sys

    script = ("import sys; from modelbox.cli import main; main(['resolve', '--help']); "
              "print(sorted(m for m in sys.modules if m.startswith('modelbox.cli.')))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    loaded = out.splitlines()[-1]
    assert "modelbox.cli.tags" in loaded
    for other in ("web_cmds", "watch_cmd", "lifecycle_cmds", "remote_cmds", "artifact_cmds"):
        assert f"modelbox.cli.{other}" not in loaded


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


def _loaded_after(script: str, cwd: Path | None = None) -> list[str]:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=cwd).stdout
    return out.splitlines()[-1].split()


_REPORT = ("import atexit, sys; atexit.register(lambda: print("
           "'importlib.metadata' in sys.modules, "
           "'entry_points' in vars(sys.modules['pydantic.plugin._loader'])))")


def test_the_console_script_writes_without_looking_for_pydantic_plugins(
        registry_path: Path) -> None:
    """pydantic's plugin look-up imports importlib.metadata and reads every installed
    distribution's metadata (~15 ms of each write, measured): the command finds none."""
    script = (f"{_REPORT}; from modelbox.cli import entry; sys.argv = ['modelbox', "
              f"'--repo', {str(registry_path)!r}, 'model', 'create', 'team/m']; entry()")
    assert _loaded_after(script) == ["False", "False"]
    from modelbox import ModelBoxClient

    assert ModelBoxClient(str(registry_path)).model("team/m").id == "team/m"  # it landed


def test_the_hook_scripts_validate_without_looking_for_pydantic_plugins(
        registry_path: Path) -> None:
    """(importlib.metadata itself is loaded there all the same: the check verdicts' engine
    names the pydantic and jsonschema versions it judged with.)"""
    script = (f"{_REPORT}; from hooks.console import validate; sys.argv = "
              "['modelbox-hook-validate', '.modelbox/registry.json']; validate()")
    assert _loaded_after(script, cwd=registry_path)[1] == "False"


def test_the_python_api_leaves_pydantic_plugins_as_they_are(registry_path: Path) -> None:
    script = (f"{_REPORT}; from modelbox import ModelBoxClient; "
              f"ModelBoxClient({str(registry_path)!r}).create_model('team/m')")
    assert _loaded_after(script) == ["True", "True"]


def test_what_else_pydantic_asks_of_its_plugin_loader_the_real_one_answers() -> None:
    """A later pydantic may import more than get_plugins from the loader the command
    replaces: anything else comes from pydantic's own module, not an ImportError."""
    script = ("import sys; from modelbox.noplugins import without_pydantic_plugins; "
              "without_pydantic_plugins(); "
              "from pydantic.plugin._loader import get_plugins, PYDANTIC_ENTRY_POINT_GROUP; "
              "print(list(get_plugins()), PYDANTIC_ENTRY_POINT_GROUP)")
    assert _loaded_after(script) == ["[]", "pydantic"]
