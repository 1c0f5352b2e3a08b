"""What every command shares: the registry opener, JSON output and value parsing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from modelbox.errors import InvalidValueError
from modelbox.names import ModelName, Reference, parse_model, parse_reference
from modelbox.registry import Registry

F = TypeVar("F", bound=Callable[..., Any])


class Context:
    """Per-invocation state: the ``--repo`` path and the registry, opened on first use."""

    def __init__(self, repo: Path | None) -> None:
        self.repo_path = repo
        self._registry: Registry | None = None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry.open(self.repo_path)
        return self._registry

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()


pass_ctx = click.make_pass_decorator(Context)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")(
        func
    )


def emit_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, default=str))


def model_arg(value: str) -> ModelName:
    return parse_model(value)


def ref_arg(value: str) -> Reference:
    return parse_reference(value)


def parse_meta(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; VALUE is JSON when it parses as JSON, else a string."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidValueError(f"--meta wants KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def parse_json_value(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise InvalidValueError(
            f"{value!r} is not JSON ({exc.msg}); quote strings, e.g. '\"coco-2017\"'"
        ) from None
