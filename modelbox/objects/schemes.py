"""Which URL schemes a URL from the repository may name.

A tracked pointer's ``uri`` and the registry's shared ``store`` setting come from the
repository, that is from whoever pushed to it. fsspec can open far more than remote files
under a URL: ``local://`` and ``file://`` read this machine, ``memory://`` and ``data:``
read this process, ``simplecache::``-style chains and ``reference://`` wrap another URL,
``zip://``, ``tar://`` and ``git://`` open local archives and repositories. So a URL from
the repository may name only a scheme of :data:`REMOTE_SCHEMES`, or one the clone's own git
config adds (``git config modelbox.allowedSchemes "sftp oss"``) -- never anything in the
repository -- and never one of :data:`NEVER` nor a chain.

Pure string checks: nothing is imported or contacted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from modelbox.errors import InvalidValueError
from modelbox.redact import credentials_in

__all__ = [
    "CONFIG_KEY", "NEVER", "REMOTE_SCHEMES", "allowed_schemes", "check_remote_url",
    "check_store_url", "scheme_of",
]

#: Remote object stores and web servers, each a fsspec protocol of a maintained package.
REMOTE_SCHEMES = frozenset({
    "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "http", "https", "hf",
})
#: Protocols that read this machine or process, or wrap another URL: refused even when the
#: git config lists them.
NEVER = frozenset({
    "file", "local", "memory", "data", "reference", "dir", "zip", "tar", "libarchive",
    "simplecache", "filecache", "blockcache", "cached", "git", "jupyter", "jlab",
    "async_wrapper",
})
#: ``git config`` section and key that extend :data:`REMOTE_SCHEMES` for one clone.
CONFIG_KEY = ("modelbox", "allowedSchemes")

_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")


def scheme_of(url: str) -> str | None:
    """The lower-cased scheme of ``url`` (``s3`` of ``s3://b/k``), None when it has none."""
    head, sep, _ = url.partition("://")
    return head.lower() if sep else None


def allowed_schemes(configured: str | None) -> frozenset[str]:
    """:data:`REMOTE_SCHEMES` plus the schemes of a git config value (space or comma
    separated), less :data:`NEVER`."""
    extra = {s.lower() for s in re.split(r"[\s,]+", configured or "") if s}
    return (REMOTE_SCHEMES | extra) - NEVER


def check_store_url(store: str, what: str, allowed: Iterable[str] | None) -> None:
    """Refuse a shared store URL that would commit a secret or open more than a store: a
    folder (a path, ``file://``) is fine; a URL must carry no credentials, not chain, and
    name a scheme of ``allowed`` (None: any scheme not in :data:`NEVER`).

    Raises:
        InvalidValueError: one of those rules is broken; the message names ``what``.
    """
    found = credentials_in(store)
    if found:
        raise InvalidValueError(
            f"{what} carries credentials ({found}); a store URL is committed and pushed to "
            "every clone: give credentials through the environment instead "
            "(AWS_ACCESS_KEY_ID, AWS_PROFILE, GOOGLE_APPLICATION_CREDENTIALS...)"
        )
    if "::" not in store and scheme_of(store) in (None, "file", "local"):
        return  # a folder: the local store
    scheme = scheme_of(store) or ""
    check_remote_url(store, what, {scheme} - NEVER if allowed is None else allowed)


def check_remote_url(url: str, what: str, allowed: Iterable[str] = REMOTE_SCHEMES) -> str:
    """Return ``url`` if its scheme may be opened for ``what`` (``the pointer x.pt of m@v``).

    Raises:
        InvalidValueError: ``url`` has no scheme, chains URLs (``::``), or names a scheme
            outside ``allowed`` or in :data:`NEVER`; the message names ``what`` and the
            scheme.
    """
    if "::" in url:
        raise InvalidValueError(
            f"{what} names the chained URL {url!r}; chained URLs (a::b) are never opened"
        )
    scheme = scheme_of(url)
    if scheme is None or not _SCHEME.fullmatch(scheme):
        raise InvalidValueError(
            f"{what} names {url!r}, which is not a remote URL (scheme://...); modelbox "
            "never opens a local path named by a pointer or a setting"
        )
    if scheme in NEVER:
        raise InvalidValueError(
            f"{what} names {url!r}: the scheme {scheme}:// reads this machine or wraps "
            "another URL, and is never opened"
        )
    permitted = frozenset(allowed)
    if scheme not in permitted:
        raise InvalidValueError(
            f"{what} names {url!r}: the scheme {scheme}:// is not allowed (allowed: "
            f"{' '.join(sorted(permitted))}); to trust it in this clone, add it to "
            f"`git config {'.'.join(CONFIG_KEY)}` (e.g. `git config {'.'.join(CONFIG_KEY)} "
            f"{scheme}`)"
        )
    return url
