"""The inputs: one large file and a folder of small ones, random bytes, built once per run.

Their modification time is set an hour back, as for files that were written earlier: the
hash caches of both modelbox and DVC refuse to trust a file modified in the last seconds.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from benchkit.harness import Bench

_MIB = 1 << 20


def big_file(bench: Bench) -> Path:
    """``sizes.big_mb`` MiB of random bytes in ``data/model.bin``."""
    path = bench.work / "data" / "model.bin"
    if not path.exists():
        bench.say(f"writing a {bench.sizes.big_mb} MiB file")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            for _ in range(bench.sizes.big_mb):
                out.write(os.urandom(_MIB))
        _age(path)
    return path


def folder(bench: Bench) -> Path:
    """``sizes.files`` files of ``sizes.file_kb`` KiB each in ``data/shards/``."""
    path = bench.work / "data" / "shards"
    if not path.exists():
        bench.say(f"writing {bench.sizes.files} files of {bench.sizes.file_kb} KiB")
        path.mkdir(parents=True)
        for i in range(bench.sizes.files):
            file = path / f"part-{i:05d}.bin"
            file.write_bytes(os.urandom(bench.sizes.file_kb << 10))
            _age(file)
    return path


def _age(path: Path) -> None:
    then = time.time() - 3600
    os.utime(path, (then, then))
