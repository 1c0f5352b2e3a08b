"""Find the seed documents and pull code out of Markdown, for the snippet tests (issue 19).

The seeds live beside the clone, in ``../shared/seeds`` from the repository root (for a Git
worktree, from the main checkout's root too); :func:`seeds_dir` returns None when neither
has them, and the tests skip saying so.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```", re.M | re.S)
_MARKER = re.compile(r"<!--\s*snippet:\s*(\w+)(?:\s*=\s*([^<>]*?))?\s*-->\s*\Z")


def seeds_dir() -> Path | None:
    """``ROOT/../shared/seeds``, else the same beside the main checkout of a worktree."""
    candidates = [ROOT.parent / "shared" / "seeds"]
    proc = subprocess.run(["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode == 0 and proc.stdout.strip():
        candidates.append(Path(proc.stdout.strip()).parent.parent / "shared" / "seeds")
    return next((c for c in candidates if any(c.glob("00[0-4]_*.txt"))), None)


def seed(number: int) -> str | None:
    """The text of seed ``number`` (``002``), or None when the seeds are absent."""
    found = seeds_dir()
    if found is None:
        return None
    return next(found.glob(f"{number:03d}_*.txt")).read_text(encoding="utf-8")


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language, code, line in the file, and the
    ``<!-- snippet: KIND=VALUE -->`` marker right before it (``None`` when unmarked)."""

    lang: str
    code: str
    line: int
    marker: tuple[str, str] | None


def blocks(text: str) -> list[Block]:
    found = []
    for match in _FENCE.finditer(text):
        before = _MARKER.search(text[: match.start()].rstrip())
        marker = (before.group(1), before.group(2) or "") if before else None
        found.append(Block(match.group(1).lower(), match.group(2),
                           text.count("\n", 0, match.start()) + 1, marker))
    return found


def substitute(code: str, fixes: list[tuple[str, str, int]]) -> str:
    """Apply each reviewed typo fix ``(old, new, count)``; each must occur exactly ``count``
    times, so a fix that no longer applies (the seed changed) fails loudly."""
    for old, new, count in fixes:
        assert code.count(old) == count, f"typo fix {old!r} expected {count}x in the seed"
        code = code.replace(old, new)
    return code
