"""Owners as the Git hosts' ``CODEOWNERS`` files name them: ``@user``, ``@org/team``, an email.

One parser for the owner field of a model (free text, whatever it holds is rendered as well
as it can be) and the owners of a namespace (refused unless every entry is usable).
"""

from __future__ import annotations

import re

__all__ = ["OWNER_PATTERN", "is_owner", "parse_owners"]

_HANDLE = re.compile(r"^@?[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:/[A-Za-z0-9._-]+)?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
#: One owner as written in a manifest, after :func:`parse_owners` (Python and ECMA-262 alike;
#: the look-ahead refuses the line break Python's ``$`` lets through before the end).
OWNER_PATTERN = (r"^(?!.*\n)(?:@[A-Za-z0-9][A-Za-z0-9-]{0,38}(?:/[A-Za-z0-9._-]+)?"
                 r"|[^@\s]+@[^@\s]+\.[^@\s]+)$")
_OWNER = re.compile(OWNER_PATTERN)


def is_owner(value: str) -> bool:
    """Whether ``value`` is one owner as a manifest holds it (``@alice``, ``@org/team``, an
    email), nothing around it: what may go into a CODEOWNERS line."""
    return _OWNER.fullmatch(value) is not None


def parse_owners(field: str) -> tuple[list[str], list[str]]:
    """``(code owners, unusable entries)`` of an owner field: entries separated by commas
    or semicolons; ``alice`` and ``@alice`` become ``@alice``, ``org/team`` becomes
    ``@org/team``, an email stays as it is."""
    good, bad = [], []
    for token in (t.strip() for t in re.split(r"[,;]", field)):
        if not token:
            continue
        if _EMAIL.match(token):
            good.append(token)
        elif _HANDLE.match(token):
            good.append(token if token.startswith("@") else f"@{token}")
        else:
            bad.append(token)
    return good, bad
