"""ISO 8601 times as modelbox writes them (``2026-12-02T10:00:00.5Z``), read alike on every
supported Python.

Python 3.10's ``datetime.fromisoformat`` reads only what ``isoformat()`` writes, so not the
``Z`` (UTC) suffix that documents carry; 3.11 reads it. A time read from a document or an
option goes through :func:`parse`, so that 3.10 answers as 3.11 does.
"""

from __future__ import annotations

from datetime import datetime

__all__ = ["parse"]


def parse(value: str) -> datetime:
    """``datetime.fromisoformat(value)``, reading a trailing ``Z`` or ``z`` as UTC on every
    Python. Raises ValueError for anything else it cannot read."""
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    return datetime.fromisoformat(value)
