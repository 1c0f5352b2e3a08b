"""Releases: a version is open until released, then its artifact set is frozen.

A version is released explicitly (``version release``), by its first collection link, or by
a *protected* tag (the registry setting ``protected_tags``, ``production`` when absent).
Release records ``released = {at, by, digest}`` in the version manifest; the digest is
SHA-256 over the canonical list of its artifacts' ``[path, sha256, size, uri]``. After that
every write to the version's ``_artifacts/`` folder is refused (:func:`guard`, called by the
registry for every commit), and reads through a protected tag or a link check the digest
before anything is placed (:func:`verify`). Plain ``json`` only: :func:`guard` runs on every
write and must cost next to nothing. See ``docs/releases.md``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

from modelbox import layout, limits
from modelbox.errors import DigestMismatchError, ModelboxError, ReleasedVersionError
from modelbox.names import Reference

__all__ = [
    "EMPTY",
    "Files",
    "check_read",
    "digest",
    "digest_of_pointers",
    "entry",
    "guard",
    "pointer_entries",
    "refuse_frozen",
    "release_of",
    "reopened",
    "verify",
]

Entry = tuple[str, str | None, int, str | None]


class Files(Protocol):
    """A tree of files: a commit's Snapshot, or the files a pre-commit hook sees."""

    def read(self, path: str) -> bytes | None: ...

    def listdir(self, path: str) -> list[tuple[str, bool]]: ...


def digest(entries: Iterable[Entry]) -> str:
    """``sha256:<hex>`` over the canonical JSON list of ``[path, sha256, size, uri]``,
    sorted by path (compact separators, UTF-8): what a release pins."""
    rows = sorted([path, sha, size, uri] for path, sha, size, uri in entries)
    text = json.dumps(rows, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


EMPTY = digest([])


def pointer_entries(files: Files, version_dir: str) -> list[Entry]:
    """The ``[path, sha256, size, uri]`` of every pointer under ``version_dir/_artifacts``.

    A pointer that is not a JSON object counts with its path and nothing else, so that a
    broken hand edit changes the digest (and ``check`` reports the file itself too)."""
    root = f"{version_dir}/{layout.ARTIFACTS_DIR}"
    return [entry(full[len(root) + 1 : -len(".json")], files.read(full))
            for full in pointer_paths(files, root)]


def pointer_paths(files: Files, root: str) -> Iterator[str]:
    """The path of every pointer file (``*.json``) in the ``_artifacts`` folder ``root``,
    nested folders included (an artifact's path may hold ``/``)."""
    stack = [root]
    while stack:
        folder = stack.pop()
        for name, is_dir in files.listdir(folder):
            full = f"{folder}/{name}"
            if is_dir:
                stack.append(full)
            elif name.endswith(".json"):
                yield full


def entry(path: str, data: bytes | None) -> Entry:
    try:
        doc = limits.loads(data or b"", "artifact")
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        return (path, None, -1, None)
    sha, size, uri = doc.get("sha256"), doc.get("size"), doc.get("uri")
    return (
        path,
        sha if isinstance(sha, str) else None,
        size if isinstance(size, int) and not isinstance(size, bool) else -1,
        uri if isinstance(uri, str) else None,
    )


def digest_of_pointers(files: Files, version_dir: str) -> str:
    return digest(pointer_entries(files, version_dir))


def release_of(document: bytes | None) -> dict[str, Any] | None:
    """The ``released`` record of a version manifest's bytes (None: open, or unreadable)."""
    if document is None:
        return None
    try:
        doc = limits.loads(document, "version")
    except ValueError:
        return None
    found = doc.get("released") if isinstance(doc, dict) else None
    return found if isinstance(found, dict) else None


def _version_of(path: str) -> tuple[str, str] | None:
    """``(version folder, MODEL@VERSION)`` when ``path`` lies in a version's artifacts."""
    marker = f"/{layout.VERSIONS_DIR}/"
    if not path.startswith(layout.MODELS + "/") or marker not in path:
        return None
    owner, _, rest = path.partition(marker)
    version, _, inside = rest.partition("/")
    if not inside.startswith(layout.ARTIFACTS_DIR):
        return None
    if inside != layout.ARTIFACTS_DIR and not inside.startswith(layout.ARTIFACTS_DIR + "/"):
        return None
    return f"{owner}/{marker.strip('/')}/{version}", f"{owner[len(layout.MODELS) + 1 :]}@{version}"


def guard(files: Files, writes: Mapping[str, object]) -> None:
    """Refuse a commit that would change the artifact set of a released version.

    ``writes`` are the paths a transaction stages; ``files`` the tree it starts from. The
    one point every artifact write passes (add, track, remove, replace), so no command can
    forget it. Deleting a whole version folder is not an artifact change.

    Raises:
        ReleasedVersionError: naming the version and what released it.
    """
    seen: set[str] = set()
    for path in writes:
        found = _version_of(path)
        if found is None or found[0] in seen:
            continue
        seen.add(found[0])
        refuse_if_released(files, found[0], found[1])


def refuse_if_released(files: Files, version_dir: str, target: str) -> None:
    """Raise :class:`ReleasedVersionError` if the version in ``version_dir`` is released."""
    release = release_of(files.read(f"{version_dir}/{layout.VERSION_FILE}"))
    if release is not None:
        raise ReleasedVersionError(target, str(release.get("by") or "a release"))


def refuse_frozen(files: Files, ref: Reference) -> None:
    """Refuse at once a write to the artifacts of the released version ``ref`` names, with
    no pydantic import and nothing hashed (the write path checks again, completely):
    a refused ``artifact add`` costs a start-up and two small reads."""
    from modelbox.documents import parse_tags

    version = ref.version
    if version is None and ref.tag is not None:
        path = layout.tags_file(ref.model)
        try:
            data = files.read(path)
            version = parse_tags(path, data).get(ref.tag) if data is not None else None
        except ModelboxError:
            return  # the full path reports a broken tag map
    if version is not None:
        refuse_if_released(files, layout.version_dir(ref.model, version), f"{ref.model}@{version}")


def verify(target: str, entries: Iterable[Entry], recorded: str | None, via: str = "") -> None:
    """Check the artifact set ``entries`` of ``target`` against the ``recorded`` digest.

    Raises:
        DigestMismatchError: naming the version and both digests.
    """
    if recorded is None:
        return
    actual = digest(entries)
    if actual != recorded:
        raise DigestMismatchError(target, recorded, actual, via)


def check_read(
    files: Files, manifest_path: str, target: str, entries: list[Entry],
    link_digest: str | None, via: str,
) -> None:
    """Before anything is placed: the artifact set read for ``target`` must match the digest
    the link ``via`` recorded and the one ``target``'s own release recorded (a protected
    tag names a released version, so reads through it are checked here too).

    Raises:
        DigestMismatchError: naming the version and both digests.
    """
    if via:
        verify(target, entries, link_digest, via)
    release = release_of(files.read(manifest_path)) if manifest_path.endswith(
        layout.VERSION_FILE) else None
    if release is not None:
        recorded = release.get("digest")
        verify(target, entries, recorded if isinstance(recorded, str) else None)


def reopened(old: bytes | None, new: bytes | None) -> str | None:
    """What is wrong when a version manifest's release record was removed or changed between
    ``old`` and ``new`` (a hand edit reopening a released version), else None."""
    before = release_of(old)
    if before is None or new is None:
        return None  # never released, or the whole version deleted (its own rules)
    if release_of(new) == before:
        return None
    return (f"released: the release ({before.get('by')}, {before.get('digest')}) was removed "
            "or changed; a release is permanent — restore the record with git, or make a new "
            "version with `modelbox version create M NEW --from M@V`")
