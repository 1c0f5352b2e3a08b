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
    elif kind is str:
        out.append(_escape(child, quote=True))  # type: ignore[arg-type]  # a str
    elif kind is list or kind is tuple:
        for item in child:  # type: ignore[attr-defined]  # a list or tuple
            _add(out, item)
    elif child is None:
        return
    elif isinstance(child, str | int | float):
        out.append(_escape(str(child), quote=True))
    elif isinstance(child, Iterable):
        for item in child:
            _add(out, item)
    else:
        out.append(_escape(str(child), quote=True))


_escape = html.escape
_ATTRS: dict[str, str] = {}  # a keyword's name -> the attribute's (``data_testid``)


def el(tag: str, attrs: dict[str, object] | None = None, *children: object) -> Markup:
    """``<tag attrs>children</tag>``; an attribute whose value is None or False is left
    out, True writes the bare name. ``tag`` and attribute names are our own literals."""
    out = ["<", tag]
    if attrs:
        for name, value in attrs.items():
            if value is None or value is False:
                continue
            attr = _ATTRS.get(name)
            if attr is None:
                attr = _ATTRS[name] = name.rstrip("_").replace("_", "-")
            if value is True:
                out.append(f" {attr}")
            elif type(value) is Markup:
                out.append(f' {attr}="{value}"')
            else:
                out.append(f' {attr}="{_escape(str(value), quote=True)}"')
    out.append(">")
    if tag not in _VOID:
        for child in children:
            _add(out, child)
        out += ("</", tag, ">")
    return Markup("".join(out))
