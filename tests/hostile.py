"""Helpers the hostile-input corpus shares (``tests/security/``).

Every case there ends the same way: one clear error line, exit 1, and nothing changed on
disk -- not the registry, not its store, not the cache, not the rest of the disk. These
helpers state that once, so each test says only what its attack is.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

MODELBOX = str(Path(sys.executable).with_name("modelbox"))

# Caches that read commands fill (history records): derived data, not registry state, so a
# refused command may still have written them.
READ_CACHES = (".git/modelbox/commits.jsonl", ".git/modelbox/outside-tags.jsonl",
               ".git/modelbox/listing.json", ".git/modelbox/audit-index",
               ".git/modelbox/versions", ".git/modelbox/check-verdicts",
               ".git/modelbox/check-outside.json")


class Proc(NamedTuple):
    """What one real ``modelbox`` process returned."""

    code: int
    out: str
    err: str


def modelbox(*argv: str | Path, cwd: Path | None = None,
             env: Mapping[str, str] | None = None, timeout: float = 120) -> Proc:
    """Run the installed ``modelbox`` command as a separate process (real exit code, real
    stderr), with the test's environment plus ``env``."""
    proc = subprocess.run(
        [MODELBOX, *(str(a) for a in argv)], cwd=cwd, capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=timeout, check=False,
    )
    return Proc(proc.returncode, proc.stdout, proc.stderr)


def assert_refused(code: int, err: str, *needles: str) -> None:
    """Exit 1 with exactly one ``modelbox: error:`` line that mentions every needle."""
    assert code == 1, (code, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("modelbox: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def fingerprint(*roots: Path, ignore: Iterable[str] = ()) -> dict[str, str]:
    """Every entry under ``roots`` (``.git`` included, symlinks not followed) with its kind,
    mode and content digest: equal fingerprints mean nothing was written, moved or removed.
    Entries whose path relative to their root starts with one of ``ignore`` are skipped, and
    so are the history caches of :data:`READ_CACHES` wherever they are."""
    skip = tuple(ignore)
    seen: dict[str, str] = {}
    for root in roots:
        if not os.path.lexists(root):
            seen[str(root)] = "absent"
            continue
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in [*dirs, *sorted(files)]:
                path = Path(folder, name)
                rel = str(path.relative_to(root))
                if (skip and rel.startswith(skip)) or rel.endswith(READ_CACHES) or (
                        os.path.dirname(rel).endswith(READ_CACHES)):
                    continue
                st = path.lstat()
                key = f"{root}/{rel}"
                if path.is_symlink():
                    seen[key] = f"link {os.readlink(path)}"
                elif path.is_dir():
                    seen[key] = f"dir {st.st_mode:o}"
                else:
                    digest = hashlib.sha256(path.read_bytes()).hexdigest()
                    seen[key] = f"file {st.st_mode:o} {digest}"
    return seen


def bytes_read() -> int:
    """Bytes this process passed to read() so far (Linux's /proc/self/io ``rchar``): what
    a test of "reads only what it must" counts; skips where /proc/self/io is absent."""
    import pytest

    io = Path("/proc/self/io")
    if not io.exists():
        pytest.skip("needs Linux's /proc/self/io")
    fields = dict(line.split(": ") for line in io.read_text().splitlines())
    return int(fields["rchar"])


def age_store(registry: Path, hours: float) -> None:
    """Pretend every object in the registry's local store was written ``hours`` ago (gc
    keeps anything younger than its grace period)."""
    then = time.time() - hours * 3600
    for path in (registry / ".git" / "modelbox" / "store").rglob("*"):
        if path.is_file():
            os.utime(path, (then, then))
