"""The hooks' console scripts: a hook module's ``main()``, then the process ends as the
``modelbox`` command's does (:func:`modelbox.exiting.exit_now`: the exit handlers and a
flush, without Python's teardown of every module, 50-80 ms after a check at 100,000
versions)."""

from __future__ import annotations

import importlib

from modelbox.exiting import exit_now
from modelbox.noplugins import without_pydantic_plugins

__all__ = ["format_", "git_pre_push", "git_refs_sync", "no_raw_artifacts", "validate"]


def _run(module: str) -> None:
    without_pydantic_plugins()  # no plugin scan at the first validator, as in the command
    exit_now(importlib.import_module(f"hooks.{module}").main())


def validate() -> None:
    _run("validate")


def format_() -> None:
    _run("format")


def no_raw_artifacts() -> None:
    _run("no_raw_artifacts")


def git_pre_push() -> None:
    _run("git_pre_push")


def git_refs_sync() -> None:
    _run("git_refs_sync")
