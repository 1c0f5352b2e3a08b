"""Names of models, versions and tags, and the references that combine them.

A model is ``NAMESPACE/NAME`` (namespaces nest; a bare ``NAME`` lives in ``default``),
``MODEL@VERSION`` names a version and ``MODEL:TAG`` names the version carrying a unique tag.
Every segment must be a valid Git ref component *and* a safe path segment, so one rule
serves both: a letter or digit first, then letters, digits, ``.``, ``_`` or ``-``; no ``..``;
not ending in ``.`` or ``.lock``; at most 128 characters. ``@`` and ``:`` can therefore
never appear inside a name, which keeps references unambiguous.
"""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

from modelbox.errors import InvalidNameError

__all__ = [
    "CHECKPOINT_ALIASES",
    "DEFAULT_NAMESPACE",
    "RESERVED_TAGS",
    "ModelName",
    "Reference",
    "check_branch",
    "check_segment",
    "fold",
    "parse_model",
    "parse_namespace",
    "parse_reference",
]

DEFAULT_NAMESPACE = "default"
#: Tags that are computed, never stored (``latest`` is the newest version by creation).
RESERVED_TAGS = frozenset({"latest"})
#: Names an experiment's checkpoints cannot take: ``EXP:latest`` and ``EXP:best`` are
#: computed (:mod:`modelbox.resolver`), so a checkpoint of that name would read as either.
CHECKPOINT_ALIASES = frozenset({"latest", "best"})

_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_MAX_SEGMENT = 128


def check_segment(kind: str, value: str) -> str:
    """Return ``value`` if it is a valid name segment, else raise :class:`InvalidNameError`."""
    rule = _broken_rule(value)
    if rule:
        raise InvalidNameError(kind, value, rule)
    return value


def check_branch(value: str) -> str:
    """Return ``value`` if it is a safe branch name, else raise :class:`InvalidNameError`.

    A branch is one or more ``/``-separated segments, each following the segment rule
    (which is stricter than ``git check-ref-format``: no ``..``, no leading ``-`` or ``.``,
    no ``.lock``, no control or special characters), and is not ``HEAD``.
    """
    if value == "HEAD":
        raise InvalidNameError("branch", value, "HEAD names the checked-out commit, not a branch")
    for part in value.split("/"):
        rule = _broken_rule(part)
        if rule:
            raise InvalidNameError("branch", value, f"segment {part!r}: {rule}")
    return value


def _broken_rule(value: str) -> str | None:
    if not value:
        return "it must not be empty"
    if len(value) > _MAX_SEGMENT:
        return f"it must be at most {_MAX_SEGMENT} characters"
    if "/" in value:
        return "it must not contain '/'"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "it must not contain control characters"
    if value.startswith("."):
        return "it must not start with '.'"
    if ".." in value:
        return "it must not contain '..'"
    if value.endswith(".lock"):
        return "it must not end with '.lock'"
    if value.endswith("."):
        return "it must not end with '.'"
    if not _SEGMENT.fullmatch(value):
        return (
            "it must start with a letter or digit and contain only letters, digits, "
            "'.', '_' and '-'"
        )
    return None


def fold(name: str) -> str:
    """``name`` as a case-insensitive file system compares it (macOS, Windows): two names
    with the same fold cannot sit side by side in one folder of a clone there, nor as refs."""
    return unicodedata.normalize("NFC", name).casefold()


class ModelName(NamedTuple):
    """A model's full name: its namespace (``a/b``) and its own name."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def parts(self) -> tuple[str, ...]:
        return (*self.namespace.split("/"), self.name)


def parse_namespace(value: str) -> str:
    """Validate a namespace (``ai/vision``); surrounding slashes are ignored."""
    stripped = value.strip("/")
    if not stripped:
        raise InvalidNameError("namespace", value, "it must not be empty")
    for segment in stripped.split("/"):
        if not segment:
            raise InvalidNameError("namespace", value, "it must not contain '//'")
        check_segment("namespace", segment)
    return stripped


def parse_model(value: str, namespace: str | None = None) -> ModelName:
    """Parse ``ns/name``, or ``name`` inside ``namespace`` (default: ``default``).

    With a ``namespace``, ``value`` is taken relative to it (seed API: ``create_model("yolo",
    owner, "ai/vision/")``). Raises :class:`InvalidNameError` naming the broken rule.
    """
    if "@" in value or ":" in value:
        raise InvalidNameError(
            "model", value, "a model name must not contain '@' or ':' (those name a version)"
        )
    _refuse_stage_syntax("model", value)
    if not value:
        raise InvalidNameError("model", value, "it must not be empty")
    if value.startswith("/") or value.endswith("/"):
        raise InvalidNameError("model", value, "it must not start or end with '/'")
    if "//" in value:
        raise InvalidNameError("model", value, "it must not contain '//'")
    if namespace and namespace.strip("/"):
        value = f"{namespace.strip('/')}/{value}"
    head, _, name = value.rpartition("/")
    check_segment("model", name)
    return ModelName(parse_namespace(head) if head else DEFAULT_NAMESPACE, name)


class Reference(NamedTuple):
    """``MODEL``, ``MODEL@VERSION`` or ``MODEL:TAG``."""

    model: ModelName
    version: str | None = None
    tag: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.model}@{self.version}"
        if self.tag is not None:
            return f"{self.model}:{self.tag}"
        return str(self.model)


def _refuse_stage_syntax(kind: str, value: str) -> None:
    """``M#stage`` is GTO's way to name a stage; here a stage is a tag: ``M:stage``."""
    head, sep, tail = value.partition("#")
    if sep and head and tail and not any(c in head + tail for c in "#@:"):
        raise InvalidNameError(kind, value, f"did you mean {head}:{tail}? (a stage is a tag, "
                               "named MODEL:TAG)")


def parse_reference(value: str) -> Reference:
    """Parse ``MODEL``, ``MODEL@VERSION`` or ``MODEL:TAG``; raise InvalidNameError if bad."""
    _refuse_stage_syntax("reference", value)
    at, colon = value.rfind("@"), value.rfind(":")
    if at >= 0 and colon >= 0:
        raise InvalidNameError(
            "reference", value, "use either MODEL@VERSION or MODEL:TAG, not both"
        )
    if at >= 0:
        model = parse_model(value[:at])
        return Reference(model, version=check_segment("version", value[at + 1 :]))
    if colon >= 0:
        model = parse_model(value[:colon])
        return Reference(model, tag=check_segment("tag", value[colon + 1 :]))
    return Reference(parse_model(value))
