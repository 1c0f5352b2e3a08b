"""Names a package exports but loads on first use (PEP 562): a command imports only what it
touches (``modelbox resolve`` needs neither the Python client nor the index code)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["attribute_loader"]


def attribute_loader(namespace: dict[str, Any], table: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for the package whose globals are ``namespace``: ``table``
    maps each lazy name to the module defining it. A name found once is kept in the
    package's globals, so later lookups do not come back here."""

    def load(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return load
