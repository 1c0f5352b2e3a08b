"""Scenario 8: peak RSS of `artifact add` and `get` of one 4 GiB file on the S3 store.

Issue 3 bounds both at 200 MB whatever the file's size (s3fs's own defaults hold ~1 GiB
for one large file). One round: the time is shown, the verdict is on the peak RSS of the
process, measured as for every row (bench/README.md, "How it measures").
"""

from __future__ import annotations

import os
import shutil

from benchkit.harness import Bench, Row, Target
from benchkit.transfers import _label, _Modelbox

BOUNDED = Target("rss", 200)  # issue 3: a multi-GB upload or download under ~200 MB RSS
_MIB = 1 << 20


def memory(bench: Bench) -> list[Row]:
    megabytes = 256 if bench.quick else 4096
    source = bench.work / "data" / "huge.bin"
    if not source.exists():
        bench.say(f"writing a {megabytes} MiB file")
        source.parent.mkdir(parents=True, exist_ok=True)
        with source.open("wb") as stream:
            for _ in range(megabytes):
                stream.write(os.urandom(_MIB))
    size = _label(megabytes)
    mb = _Modelbox(bench, "huge")
    bench.say(f"8: artifact add of {size}")
    added = mb.add(source)
    out = bench.fresh("out-huge")
    bench.say(f"8: get of {size}")
    got = mb.get(out)
    shutil.rmtree(out, ignore_errors=True)
    source.unlink()
    return [
        Row.of(f"8. add {size} file, peak RSS", [added], target=BOUNDED),
        Row.of(f"8. get {size} file, peak RSS", [got], target=BOUNDED),
    ]
