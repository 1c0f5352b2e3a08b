"""The two small documents nearly every command reads, parsed without pydantic.

``resolve`` and friends must start in well under 0.25 s, and importing pydantic alone
costs more than half of that. The registry settings and a model's tag map are tiny and flat,
so they are checked here by hand; ``tests/test_schemas.py`` runs the same corpus of valid
and invalid documents through these functions, the pydantic models and ``schemas/``, so
the three cannot drift apart.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

from modelbox import limits
from modelbox.errors import InvalidNameError, ManifestError, RegistryFormatError
from modelbox.names import check_branch

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# A name segment exactly as the schemas have it (modelbox.manifests.NAME_PATTERN).
_SEGMENT = re.compile(
    r"(?!\.)(?![^/]*\.\.)(?![^/]*\.lock(?:/|$))(?![^/]*\.(?:/|$))[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
)


class Settings(NamedTuple):
    branch: str = "main"
    store: str | None = None
    format: int = 1
    #: the tags that release what they name (``protected_tags``; absent: production)
    protected_tags: tuple[str, ...] = ("production",)
    #: every registration and tag move also makes a GTO-format Git tag (docs/gto.md)
    git_tags: bool = False


def _load(path: str, data: bytes, kind: str) -> dict[str, Any]:
    try:
        raw = limits.loads(data, kind)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(path, f"not valid JSON ({exc}); fix or restore the file") from None
    except limits.LimitError as exc:
        raise ManifestError(path, f"(document): {exc}; fix or restore the file") from None
    if not isinstance(raw, dict):
        raise ManifestError(path, "(document): must be a JSON object")
    return raw


def _bad(path: str, field: str, problem: str) -> ManifestError:
    return ManifestError(path, f"{field}: {problem}; fix the file or restore it with git")


def parse_settings(path: str, data: bytes) -> Settings:
    """Parse ``.modelbox/registry.json``; raise ManifestError / RegistryFormatError."""
    raw = _load(path, data, "registry")
    fmt = raw.get("format")
    if isinstance(fmt, int) and not isinstance(fmt, bool) and fmt != 1:
        raise RegistryFormatError(
            f"this registry uses format {fmt}; this modelbox reads format 1 — upgrade modelbox"
        )
    unknown = sorted(set(raw) - {"kind", "format", "branch", "store", "protected_tags",
                                 "git_tags"})
    if unknown:
        raise _bad(path, unknown[0], "unknown field")
    if raw.get("kind", "registry") != "registry":
        raise _bad(path, "kind", "must be 'registry'")
    if fmt is not None and fmt != 1:
        raise _bad(path, "format", "must be 1")
    branch = raw.get("branch", "main")
    if not isinstance(branch, str) or not branch:
        raise _bad(path, "branch", "must be a non-empty string")
    try:
        check_branch(branch)  # it becomes refs/heads/<branch>: a remote may name anything
    except InvalidNameError as exc:
        raise _bad(path, "branch", f"{branch!r} is not a safe branch name ({exc.rule})"
                   ) from None
    store = raw.get("store")
    if store is not None and not isinstance(store, str):
        raise _bad(path, "store", "must be a string or null")
    git_tags = raw.get("git_tags", False)
    if not isinstance(git_tags, bool):  # a co-user's edit: exactly true or false
        raise _bad(path, "git_tags", "must be true or false")
    protected = raw.get("protected_tags")
    if protected is None:
        return Settings(branch=branch, store=store, git_tags=git_tags)
    if not isinstance(protected, list) or len(protected) > 64:
        raise _bad(path, "protected_tags", "must be a list of at most 64 tag names or null")
    for tag in protected:
        if not isinstance(tag, str) or not _SEGMENT.fullmatch(tag):
            raise _bad(path, "protected_tags", f"{str(tag)[:80]!r} is not a valid tag name")
    return Settings(branch=branch, store=store, protected_tags=tuple(protected),
                    git_tags=git_tags)


def parse_tags(path: str, data: bytes) -> dict[str, str]:
    """Parse a model's ``_tags.json`` into tag -> version; raise ManifestError."""
    raw = _load(path, data, "tags")
    unknown = sorted(set(raw) - {"kind", "tags"})
    if unknown:
        raise _bad(path, unknown[0], "unknown field")
    if raw.get("kind", "tags") != "tags":
        raise _bad(path, "kind", "must be 'tags'")
    tags = raw.get("tags", {})
    if not isinstance(tags, dict):
        raise _bad(path, "tags", "must be an object mapping tag -> version")
    for tag, version in tags.items():
        if not _NAME.fullmatch(tag):
            raise _bad(path, f"tags.{tag}", "is not a valid tag name")
        if not isinstance(version, str) or not _NAME.fullmatch(version):
            raise _bad(path, f"tags.{tag}", "must be a valid version name")
    return dict(tags)
