"""What a plainly well-formed ref name is, for the readers that skip dulwich's checks.

A plain name is ``refs/`` and then only ``[A-Za-z0-9_./+@=,-]``, with none of ``..``,
``.lock``, ``/.``, ``//`` or ``@{`` and no trailing ``/`` or ``.``: a subset of what git's
``check-ref-format`` allows. :mod:`modelbox.refs.packedrefs` reads a ``packed-refs`` file
whose names are all plain with one regular expression, and :mod:`modelbox.refs.catfile`
reads a plain loose ref as a file; any other name goes to dulwich, which applies git's
full rules.
"""

from __future__ import annotations

import re

__all__ = ["CHARACTERS", "FORBIDDEN", "is_plain", "is_well_formed"]

#: the characters of a plain name after ``refs/`` (a regular expression class)
CHARACTERS = rb"[A-Za-z0-9_./+@=,-]"
#: what git's rules forbid anywhere in a name made of those characters
FORBIDDEN = (b"..", b".lock", b"/.", b"//", b"@{")
_PLAIN = re.compile(rb"refs/" + CHARACTERS + rb"+")


def is_plain(name: bytes) -> bool:
    """Whether ``name`` is a plainly well-formed ref name (see the module docstring)."""
    return (_PLAIN.fullmatch(name) is not None and not name.endswith((b"/", b"."))
            and not any(bad in name for bad in FORBIDDEN))


def is_well_formed(name: bytes) -> bool:
    """Whether git's ``check-ref-format`` rules allow ``name`` (plain names without dulwich)."""
    if is_plain(name):
        return True
    from dulwich.refs import Ref, check_ref_format

    return bool(check_ref_format(Ref(name)))
