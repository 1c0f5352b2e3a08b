"""Tracked artifacts: files that stay where they are (``s3://``, ``gs://``, ``https://``...).

modelbox records what can be verified later — the size and the store's ETag or checksum —
and checks both when it fetches the file again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from modelbox.errors import ArtifactError, InvalidValueError
from modelbox.objects._files import atomic_write
from modelbox.objects._remote import open_remote
from modelbox.objects._s3 import PART_SIZE
from modelbox.objects.schemes import REMOTE_SCHEMES, check_remote_url

_ETAG_KEYS = ("ETag", "etag", "md5Hash", "checksum", "md5", "crc32c")


@dataclass(frozen=True)
class ExternalInfo:
    uri: str
    size: int
    etag: str | None


def _check_uri(uri: str) -> None:
    if "://" not in uri or uri.startswith("file://"):
        raise InvalidValueError(
            f"{uri} is not a remote URI; upload local files with `modelbox artifact add`"
        )


def describe(uri: str, *, allowed: Iterable[str] = REMOTE_SCHEMES,
             what: str = "artifact track") -> ExternalInfo:
    """Size and ETag/checksum of the file at ``uri``, whose scheme must be in ``allowed``
    (see :mod:`modelbox.objects.schemes`; ``what`` names the pointer in the refusal).

    Raises:
        InvalidValueError: ``uri`` is not a remote URI, its scheme is not allowed, or its
            protocol is unknown.
        ArtifactError: there is no file at ``uri`` (or it is a folder).
        StoreError: the store refused or could not be reached.
    """
    _check_uri(uri)
    check_remote_url(uri, what, allowed)
    backend = open_remote(uri)
    with backend.errors():
        try:
            info = backend.fs.info(backend.root)
        except FileNotFoundError:
            raise ArtifactError(f"nothing to track at {uri}: no such file") from None
    if info.get("type") == "directory":
        raise ArtifactError(f"{uri} is a folder; track its files one by one")
    etag = next((str(info[k]).strip('"') for k in _ETAG_KEYS if info.get(k)), None)
    return ExternalInfo(uri, int(info.get("size") or 0), etag)


def unchecked(uri: str, *, allowed: Iterable[str] = REMOTE_SCHEMES,
              what: str = "artifact track") -> ExternalInfo:
    """What ``artifact track --no-check`` records of ``uri`` without contacting its store:
    nothing but the URI, checked as :func:`describe` checks it (size 0, no ETag).

    Raises:
        InvalidValueError: as :func:`describe`.
    """
    _check_uri(uri)
    check_remote_url(uri, what, allowed)
    return ExternalInfo(uri, 0, None)


def fetch(uri: str, dest: Path, *, size: int, etag: str | None,
          allowed: Iterable[str] = REMOTE_SCHEMES, what: str = "pointer",
          verified: bool = True) -> None:
    """Download ``uri`` to ``dest`` (whole or not at all) and check it is what was tracked.

    A pointer tracked with ``--no-check`` (``verified`` False) recorded no size or ETag:
    the file is checked against what its store says now (size, and a plain-MD5 ETag), which
    proves the transfer whole but not that the content is the one meant.

    Raises:
        InvalidValueError: the scheme of ``uri`` is not in ``allowed`` (see :func:`describe`).
        ObjectCorruptError-like ArtifactError: the size or ETag changed since tracking.
        StoreError: the store refused or could not be reached.
    """
    current = describe(uri, allowed=allowed, what=what)
    if not verified:
        size, etag = current.size, current.etag
    if current.size != size or (etag and current.etag and current.etag != etag):
        raise ArtifactError(
            f"{uri} changed since it was tracked (size {current.size} vs {size}, "
            f"etag {current.etag} vs {etag}); track it again with --replace to accept the "
            "new content"
        )
    backend = open_remote(uri)
    received, digest = 0, hashlib.md5(usedforsecurity=False)
    with backend.errors(), atomic_write(dest) as out, backend.fs.open(backend.root, "rb") as src:
        while chunk := src.read(PART_SIZE):
            received += len(chunk)
            digest.update(chunk)
            out.write(chunk)
        if received != size:
            raise ArtifactError(f"{uri}: received {received} bytes, expected {size}")
        plain_md5 = etag is not None and len(etag) == 32 and "-" not in etag
        if plain_md5 and digest.hexdigest() != etag:
            raise ArtifactError(f"{uri}: content does not match the tracked ETag {etag}")
