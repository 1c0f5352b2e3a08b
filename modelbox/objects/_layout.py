"""Where an object lives inside a store or cache: format 1 of the object layout.

An object with SHA-256 ``d`` (64 lowercase hex digits) lives at
``sha256/<d[:2]>/<d[2:]>`` under the store's root. docs/store.md promises this layout.
"""

from __future__ import annotations

import re

from modelbox.errors import InvalidValueError
from modelbox.objects.hashing import check_digest

FORMAT = 1
PREFIX = "sha256"
NOTES = ("clones", "claims", "gc")
"""Folders of small JSON notes beside the objects, which gc reads (docs/store.md, "Garbage
collection"): ``clones/<id>.json`` who writes here, ``claims/<id>-<n>.json`` which objects
a write is about to reference, ``gc/<id>.json`` a gc deleting right now."""
_NOTE = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,127}")
_KEY = re.compile(r"sha256/([0-9a-f]{2})/([0-9a-f]{62})")


def relative_key(digest: str) -> str:
    """The key of ``digest`` relative to a store's root.

    Raises:
        InvalidValueError: ``digest`` is not a SHA-256 digest.
    """
    check_digest(digest)
    return f"{PREFIX}/{digest[:2]}/{digest[2:]}"


def is_note(name: str) -> bool:
    """Whether ``name`` can be a note's name (a writer's temp file cannot)."""
    return _NOTE.fullmatch(name) is not None


def note_key(folder: str, name: str) -> str:
    """The key of the note ``name`` in ``folder`` (one of :data:`NOTES`).

    Raises:
        InvalidValueError: not a note folder, or ``name`` is not a plain file name.
    """
    if folder not in NOTES or not _NOTE.fullmatch(name):
        raise InvalidValueError(f"{folder}/{name} is not the name of a store note")
    return f"{folder}/{name}"


def digest_of(key: str) -> str | None:
    """The digest stored at a relative ``key``, or None if ``key`` is not an object's key."""
    match = _KEY.fullmatch(key)
    return match[1] + match[2] if match else None
