"""The documented limits on what modelbox accepts (docs/design.md, "Limits").

Paths: every path modelbox writes in a registry stays within :data:`MAX_PATH_BYTES` from the
registry root, and every component of it within :data:`MAX_COMPONENT_BYTES` (with room for
the temporary names modelbox writes beside a file), so a clone fits on Linux, macOS and
Windows (with ``core.longpaths``) alike.

JSON: a value given by the user (metadata, ``meta set``) nests at most
:data:`MAX_VALUE_DEPTH` deep, a document read from the repository or the store at most
:data:`MAX_DOCUMENT_DEPTH`; no number has more than :data:`MAX_NUMBER_DIGITS` digits; text is
valid UTF-8 (no lone surrogates). Each kind of document has a size cap (:data:`CAPS`).

:func:`scan` checks a document's bytes against these limits *before* :mod:`json` parses it,
so that no document can exhaust the stack (a ``RecursionError``), spend seconds converting a
huge integer, or smuggle text that cannot be written back.
"""

from __future__ import annotations

import json
import re
from array import array
from collections.abc import Callable
from itertools import accumulate
from typing import Any

__all__ = [
    "CAPS",
    "MAX_COMPONENT_BYTES",
    "MAX_DOCUMENT_DEPTH",
    "MAX_MODEL_BYTES",
    "MAX_NUMBER_DIGITS",
    "MAX_PATH_BYTES",
    "MAX_VALUE_DEPTH",
    "LimitError",
    "check_value",
    "loads",
    "path_problem",
    "scan",
    "shown",
]

MAX_COMPONENT_BYTES = 255
#: Worktree writes go through ``.<name>.modelbox-tmp`` beside the file: 14 bytes more.
_TEMP_OVERHEAD = 14
#: From the registry root; a clone folder of up to 256 bytes then stays within macOS's
#: 1,024-byte PATH_MAX (Linux allows 4,096).
MAX_PATH_BYTES = 768
#: ``NAMESPACE/NAME`` of a model or experiment: leaves room below it for a version of the
#: longest name (128) and its artifacts.
MAX_MODEL_BYTES = 320

MAX_VALUE_DEPTH = 64
#: A document wraps values in a few levels of its own (an event's metadata is 4 deep).
MAX_DOCUMENT_DEPTH = MAX_VALUE_DEPTH + 16
MAX_NUMBER_DIGITS = 100

_KIB, _MIB = 1024, 1024 * 1024
#: Size caps per document kind (the ``kind`` of each document, as `modelbox check` names
#: them), in bytes. Sized for real volumes: a metric series of ~2 million points, a folder
#: listing of ~350,000 files, an event log of ~300,000 events.
CAPS: dict[str, int] = {
    "registry": 64 * _KIB,
    "pointer": 64 * _KIB,
    "namespace": 64 * _KIB,
    "tags": 4 * _MIB,
    "policy": 4 * _MIB,
    "model": 16 * _MIB,
    "version": 16 * _MIB,
    "experiment": 16 * _MIB,
    "checkpoint": 16 * _MIB,
    "events": 64 * _MIB,
    "directory": 64 * _MIB,
    "metrics": 256 * _MIB,
}
CAPS["artifact"] = CAPS["pointer"]  # the pointer document's own ``kind``


class LimitError(ValueError):
    """A document or value breaks one of the limits; the message says which, in words."""


# A JSON string (escapes included), matched without backtracking.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# Digits become "0", everything else " ": a too long number is then a plain substring,
# found at memchr speed (a regex ``[0-9]{101}`` takes 20 ms a megabyte).
_DIGITS = bytes(48 if chr(b).isdigit() and b < 128 else 32 for b in range(256))
_LONG_RUN = b"0" * (MAX_NUMBER_DIGITS + 1)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_BRACKETS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[{]}"')


def scan(data: bytes | str, kind: str, *, depth: int = MAX_DOCUMENT_DEPTH) -> None:
    """Raise :class:`LimitError` if the JSON text ``data`` of ``kind`` (a key of
    :data:`CAPS`; any other kind, such as ``""``, has no size cap) is too large, nests
    deeper than ``depth`` or holds a number of more than :data:`MAX_NUMBER_DIGITS` digits.

    Cheap where it can be: two C-speed counts settle small, flat documents; only a document
    with more openers than ``depth`` is stripped of its strings and measured.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    cap = CAPS.get(kind)
    if cap is not None and len(raw) > cap:
        raise LimitError(f"is larger than the {_size(cap)} a {kind} document may have "
                         f"({len(raw)} bytes)")
    openers = raw.count(b"[") + raw.count(b"{")
    digits_maybe = _LONG_RUN in raw.translate(_DIGITS)
    if openers <= depth and not digits_maybe:
        return
    if digits_maybe and _LONG_RUN in _STRING.sub(b'""', raw).translate(_DIGITS):
        raise LimitError(f"holds a number of more than {MAX_NUMBER_DIGITS} digits")
    if openers > depth:
        # Brackets inside strings do not count: drop escapes (``\"``), keep only quotes and
        # brackets, and take every other piece between quotes. All of it at C speed.
        kept = _ESCAPE.sub(b"", raw).translate(None, _NOT_STRUCTURE)
        outside = b"".join(kept.split(b'"')[::2])
        steps = array("b", outside.translate(_BRACKETS))
        if steps and max(accumulate(steps)) > depth:
            raise LimitError(f"nests deeper than {depth} levels")


def loads(data: bytes, kind: str, decode: Callable[[bytes], Any] = json.loads) -> Any:
    """Parse the document ``data`` of ``kind`` with ``decode`` once it is known to keep
    within the limits; raise :class:`LimitError` if it does not (``decode``'s own errors,
    such as :class:`json.JSONDecodeError`, pass through)."""
    scan(data, kind)
    document = decode(data)
    if has_surrogate_escape(data):
        check_value(document, depth=MAX_DOCUMENT_DEPTH + 1)
    return document


def has_surrogate_escape(data: bytes) -> bool:
    """Whether ``data`` may spell a UTF-16 surrogate as an escape (``\\ud800``): only then
    can parsed text hold a lone surrogate, which :func:`check_value` then looks for."""
    return _SURROGATE_ESCAPE.search(data) is not None


def check_value(value: Any, *, depth: int = MAX_VALUE_DEPTH) -> None:
    """Raise :class:`LimitError` if a parsed JSON value nests deeper than ``depth``, holds
    an integer of more than :data:`MAX_NUMBER_DIGITS` digits, or text that is not valid
    Unicode (a lone surrogate, as undecodable bytes on a command line become). Iterative:
    no value can exhaust the stack."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            if level >= depth:
                raise LimitError(f"nests deeper than {depth} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_text(key)
                    stack.append((child, level + 1))
            else:
                stack.extend((child, level + 1) for child in item)
        elif isinstance(item, str):
            _check_text(item)
        # Compared, not converted: turning a huge int into text is what costs (and what
        # Python 3.11+ refuses past 4,300 digits).
        elif isinstance(item, int) and not -_MAX_INT <= item <= _MAX_INT:
            raise LimitError(f"holds a number of more than {MAX_NUMBER_DIGITS} digits")


_MAX_INT = 10**MAX_NUMBER_DIGITS - 1


def _check_text(text: Any) -> None:
    if isinstance(text, str):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = text[exc.start : exc.end].encode("unicode_escape").decode("ascii")
            raise LimitError(
                f"holds text that is not valid UTF-8 ({bad} at character {exc.start})"
            ) from None


def path_problem(path: str) -> str | None:
    """Why the registry path ``path`` cannot be written everywhere (too long, or not
    UTF-8), or None."""
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError as exc:
        bad = path[exc.start : exc.end].encode("unicode_escape").decode("ascii")
        return f"its path holds text that is not valid UTF-8 ({bad})"
    if size > MAX_PATH_BYTES:
        return (f"its path in the registry would be {size} bytes long; at most "
                f"{MAX_PATH_BYTES} are allowed")
    for component in path.split("/"):
        length = len(component.encode("utf-8")) + _TEMP_OVERHEAD
        if length > MAX_COMPONENT_BYTES:
            return (f"a part of its path would be {length - _TEMP_OVERHEAD} bytes long; at "
                    f"most {MAX_COMPONENT_BYTES - _TEMP_OVERHEAD} are allowed")
    return None


def shown(value: str, width: int = 60) -> str:
    """``value`` for a message, cut to about ``width`` characters."""
    return value if len(value) <= width else f"{value[: width - 3]}... ({len(value)} characters)"


def _size(cap: int) -> str:
    return f"{cap // _MIB} MiB" if cap >= _MIB else f"{cap // _KIB} KiB"
