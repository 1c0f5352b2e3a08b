"""Which paths from Git or a listing may reach the disk: git's own checkout rules.

A tree pulled from a remote, or a folder listing read from a store, is untrusted: an entry
named ``..`` or ``.git`` would write outside the target folder or into the repository's
own hooks and config. These are the rules git applies before it writes a path
(``verify_path`` and ``verify_dotfile`` in git's ``read.c``, ``is_ntfs_dotgit`` and
``is_hfs_dotgit`` in ``path.c``), with the protections git turns on for macOS and Windows
applied everywhere, since a registry is cloned on every system:

* no absolute path, no drive letter, no empty component (``a//b``, a trailing ``/``);
* no component ``.`` or ``..``, none holding ``/``, ``\\`` or NUL, and none that is not
  valid UTF-8 (modelbox writes only UTF-8 names);
* no ``.git`` in any case, nor a name a file system takes for it: NTFS drops trailing
  dots and spaces and reads ``.git::$INDEX_ALLOCATION`` and the short name ``git~1`` as
  ``.git``; HFS+ ignores some invisible code points (``.g\\u200cit``);
* at most :data:`MAX_COMPONENT` bytes a component and :data:`MAX_PATH` bytes in all
  (``NAME_MAX`` and ``PATH_MAX`` on Linux): longer paths cannot be written anyway.

Tree entries are also held to the modes modelbox writes (regular files and folders): a
symbolic link (mode 120000) followed by a file below it is a classic escape, and a
gitlink (160000, a submodule) names a commit of another repository.

No heavy import here: this runs on every pull and every ``get``.
"""

from __future__ import annotations

import re

from modelbox.errors import UnsafePathError

__all__ = ["MAX_COMPONENT", "MAX_PATH", "check_distinct", "check_path", "unsafe_component",
           "unsafe_mode", "unsafe_path"]

MAX_COMPONENT = 255
MAX_PATH = 4096
DIRECTORY_MODE = 0o040000
# Regular files (0o100664 is an old git's spelling of 0o100644) and folders.
_SAFE_MODES = frozenset({0o100644, 0o100755, 0o100664, DIRECTORY_MODE})
# Code points HFS+ ignores when it compares names (git's is_hfs_dotgit): zero-width
# joiners and marks, bidirectional controls, deprecated format characters, the BOM.
_HFS_IGNORED = frozenset(
    [*range(0x200C, 0x2010), *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF]
)


def unsafe_component(name: str) -> str | None:
    """Why one path component (a tree entry's name) may not be written, or None."""
    if not name:
        return "it has an empty path component"
    if name in (".", ".."):
        return f"the component {name!r} leaves the folder"
    for char, what in (("/", "'/'"), ("\\", "a backslash"), ("\0", "a NUL byte")):
        if char in name:
            return f"the component {name!r} holds {what}"
    if "\ufffd" in name or any(0xD800 <= ord(c) <= 0xDFFF for c in name):
        return f"the component {name!r} is not valid UTF-8"
    if len(name.encode("utf-8")) > MAX_COMPONENT:
        return f"a component is longer than {MAX_COMPONENT} bytes"
    if _is_dotgit(name):
        return f"the component {name!r} names the repository's own .git folder"
    return None


def _is_dotgit(name: str) -> bool:
    """``.git`` in any case, or a name NTFS or HFS+ resolves to it."""
    # HFS+: ignorable code points dropped, then compared without case.
    if "".join(c for c in name if ord(c) not in _HFS_IGNORED).lower() == ".git":
        return True
    # NTFS: ".git" or its short name "git~1", then only dots and spaces, or an
    # alternate data stream (":...").
    lowered = name.lower()
    for stem in (".git", "git~1"):
        if lowered.startswith(stem):
            rest = lowered[len(stem):].partition(":")[0]
            if not rest.strip(". "):
                return True
    return False


# Names modelbox itself writes, which need no closer look (a C-speed match: the check
# runs on every path of every pulled commit).
_PLAIN = re.compile(
    r"(?:[A-Za-z0-9_][A-Za-z0-9._-]{0,254}/){0,64}[A-Za-z0-9_][A-Za-z0-9._-]{0,254}"
)


def unsafe_path(path: str) -> str | None:
    """Why ``path`` (``/``-separated, relative to the folder it is written into) may not be
    written, or None."""
    if _PLAIN.fullmatch(path) and len(path) <= MAX_PATH:
        return None
    if not path:
        return "it is empty"
    if path.startswith("/") or (len(path) > 1 and path[1] == ":" and path[0].isascii()
                                and path[0].isalpha()):
        return "it is absolute"
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH:
        return f"it is longer than {MAX_PATH} bytes"
    for name in path.split("/"):
        reason = unsafe_component(name)
        if reason is not None:
            return reason
    return None


def unsafe_mode(mode: int) -> str | None:
    """Why a tree entry of this mode may not be written, or None (files and folders)."""
    if mode in _SAFE_MODES:
        return None
    if mode == 0o120000:
        return "it is a symbolic link, which modelbox never writes"
    if mode == 0o160000:
        return "it is a submodule (gitlink), which modelbox never writes"
    return f"its mode {mode:o} is not a file or a folder"


def check_path(path: str, source: str, mode: int | None = None) -> None:
    """Raise :class:`UnsafePathError` if ``path`` (of ``mode``, when it comes from a Git
    tree) may not be written; ``source`` names where it came from in the message."""
    reason = unsafe_path(path) or (None if mode is None else unsafe_mode(mode))
    if reason is not None:
        raise UnsafePathError(source, path, reason)


def check_distinct(paths: list[str], source: str) -> None:
    """Refuse ``paths`` (to be written into one folder) if one is named twice (which copy
    would stay?) or is both a file and a folder of others (``a`` and ``a/b``).

    Raises:
        UnsafePathError: naming the first such path.
    """
    seen: set[str] = set()
    for path in paths:
        if path in seen:
            raise UnsafePathError(source, path, "it is named twice")
        seen.add(path)
    for path in paths:
        parent = path.rpartition("/")[0]
        while parent:
            if parent in seen:
                raise UnsafePathError(source, parent, "it is named both as a file and as a "
                                      "folder of other files")
            parent = parent.rpartition("/")[0]
