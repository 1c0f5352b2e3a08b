"""The one place text becomes HTML: every string goes through :func:`esc` unless it is
:class:`Markup` this module built.

A page is built from :func:`el` calls; a child that is a plain ``str`` (anything read from
the repository: descriptions, metadata keys, tag names, commit text) is escaped, a
:class:`Markup` (the output of :func:`el`) is not. Attribute values are always escaped.
Nothing else in :mod:`modelbox.web` writes a ``<``.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

__all__ = ["Markup", "el", "esc", "join"]


_VOID = frozenset({"meta", "link", "input", "br", "img"})


class Markup(str):
    """Text that is already HTML (built here); never make one from repository text."""

    __slots__ = ()


def esc(value: object) -> str:
    """``value`` as HTML text or an attribute value: ``& < > " '`` escaped."""
    if isinstance(value, Markup):
        return value
    return html.escape(str(value), quote=True)


def join(children: object) -> Markup:
    """Children (strings, markup, numbers, nested iterables; None skipped) as markup."""
    out: list[str] = []
    _add(out, children)
    return Markup("".join(out))


def _add(out: list[str], child: object) -> None:
    kind = type(child)
    if kind is Markup:
        out.append(child)  # type: ignore[arg-type]  # a Markup is a str
    elif kind is list or kind is tuple:
        for item in child:  # type: ignore[attr-defined]  # a list or tuple
            _add(out, item)
    elif child is None:
        return
    elif isinstance(child, str | int | float):
        out.append(html.escape(str(child), quote=True))
    elif isinstance(child, Iterable):
        for item in child:
            _add(out, item)
    else:
        out.append(html.escape(str(child), quote=True))


def el(tag: str, attrs: dict[str, object] | None = None, *children: object) -> Markup:
    """``<tag attrs>children</tag>``; an attribute whose value is None or False is left
    out, True writes the bare name. ``tag`` and attribute names are our own literals."""
    out = ["<", tag]
    if attrs:
        for name, value in attrs.items():
            if value is None or value is False:
                continue
            attr = name.rstrip("_").replace("_", "-")
            out.append(f" {attr}" if value is True else f' {attr}="{esc(value)}"')
    out.append(">")
    if tag not in _VOID:
        _add(out, children)
        out += ("</", tag, ">")
    return Markup("".join(out))
