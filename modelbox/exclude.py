"""Keep downloaded weights out of the registry's own commits.

``modelbox get`` defaults to ``-o .``; run inside the registry, that is the work tree, and a
later ``git add -A && git commit`` would commit 50 MB of weights with every hook passing. So
before anything is placed there, the target is listed in ``.git/info/exclude`` — the
clone's own ignore file, never committed, honoured by ``git add`` and ``git status`` — once.

What is listed: the target folder (``/out/``), or, when the target is the work tree's top or
lies in one of the registry's own trees (``models/``...), the exact paths placed there
(``/model.pt``): excluding ``/`` or ``/models/`` would hide the registry itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from modelbox import layout

__all__ = ["exclude_placed"]

_SPECIAL = set("\\*?[!#")


def _pattern(relative: str, *, folder: bool) -> str:
    """An anchored gitignore pattern matching exactly ``relative`` (posix, no ``/`` ends)."""
    escaped = "".join(f"\\{c}" if c in _SPECIAL else c for c in relative)
    if escaped.endswith(" "):  # trailing spaces are dropped unless escaped
        escaped = escaped[:-1] + "\\ "
    return "/" + escaped + ("/" if folder else "")


def exclude_placed(root: Path, exclude_file: Path, dest: Path,
                   placed: Iterable[tuple[str, bool]]) -> list[str]:
    """List what a download into ``dest`` will place in ``exclude_file`` when ``dest`` is
    inside the work tree ``root``; return the patterns added (none when outside, or when
    every one is listed already). ``placed`` holds each artifact's path below ``dest`` and
    whether it is a folder."""
    top = root.resolve()
    target = Path(os.path.abspath(dest)).resolve()
    if target != top and not target.is_relative_to(top):
        return []
    relative = target.relative_to(top).as_posix() if target != top else ""
    if relative == ".git" or relative.startswith(".git/"):
        return []  # git never adds its own folder
    own = (layout.MODELS, layout.EXPERIMENTS, layout.SETTINGS.split("/")[0])
    if relative and relative.split("/")[0] not in own:
        wanted = [_pattern(relative, folder=True)]
    else:
        prefix = f"{relative}/" if relative else ""
        wanted = [_pattern(prefix + path, folder=is_dir) for path, is_dir in placed]
    try:
        present = set(exclude_file.read_text(encoding="utf-8").splitlines())
    except FileNotFoundError:
        present = set()
    new = list(dict.fromkeys(p for p in wanted if p not in present))
    if new:
        exclude_file.parent.mkdir(parents=True, exist_ok=True)
        with exclude_file.open("a", encoding="utf-8") as out:
            if exclude_file.stat().st_size and not _ends_with_newline(exclude_file):
                out.write("\n")
            out.write("".join(f"{p}\n" for p in new))
    return new


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
