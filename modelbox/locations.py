"""Registry locations given as URLs: how one is told from a folder, and the name of its
cache folder. Pure functions, cheap to import (the CLI asks before it loads any Git code).
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["is_url", "strip_credentials", "url_key"]

_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?!//)")
_SECRET_PARAM = re.compile(
    r"(?i)secret|token|passw(?:or)?d|pwd|sig|signature|credential|key|auth|session")


def is_url(value: str) -> bool:
    """Whether ``--repo VALUE`` names a remote registry (``file://``, ``git://``,
    ``http(s)://``, ``ssh://``, ``user@host:path``) rather than a folder."""
    return "://" in value or bool(_SCP_LIKE.match(value))


def strip_credentials(url: str) -> str:
    """``url`` without user-info (``user:token@``) or secret-looking query parameters.

    An scp-like ``git@host:path`` keeps its user: it names an ssh account, not a secret.
    """
    if "://" not in url:
        return url
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    query = "&".join(p for p in parts.query.split("&")
                     if p and not _SECRET_PARAM.search(p.partition("=")[0]))
    return urlunsplit((parts.scheme.lower(), host, parts.path, query, parts.fragment))


def url_key(url: str) -> str:
    """The cache folder name of ``url``: a hash of it without credentials, so two spellings
    with different tokens share one mirror and no token reaches the disk."""
    return hashlib.sha256(strip_credentials(url).encode("utf-8")).hexdigest()[:32]
