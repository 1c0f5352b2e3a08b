"""Scenario 4: SHA-256 of the large file, modelbox's `hash_file` vs `hashlib.file_digest`
and `openssl dgst -sha256`.

The file is in the page cache (it was just written and read), so this measures hashing, not
the disk. modelbox and hashlib are timed inside their process (start-up and imports left
out); openssl is a whole process, whose start-up is a few milliseconds.
"""

from __future__ import annotations

import shutil

from benchkit import data
from benchkit.harness import PROBES, Bench, Row, Sample, Target, alternate, inner, measure

THROUGHPUT = Target("ratio", 1 / 0.9)  # issue 3: >= 90% of hashlib.file_digest's throughput


def hashing(bench: Bench) -> list[Row]:
    source = data.big_file(bench)
    env, cwd = bench.env(), bench.work
    mib = bench.sizes.big_mb
    size = f"{mib // 1024} GiB" if mib % 1024 == 0 else f"{mib} MiB"
    openssl = shutil.which("openssl")
    ours: list[Sample] = []
    hashlib_: list[Sample] = []
    openssl_: list[Sample] = []
    measure(["cat", str(source)], env=env, cwd=cwd)  # into the page cache
    for i in range(bench.fast_repeat):
        bench.say(f"4: round {i + 1}/{bench.fast_repeat}")
        steps = [
            lambda: ours.append(inner(measure(
                [bench.python, str(PROBES), "hash-modelbox", str(source)], env=env, cwd=cwd,
                capture=True))),
            lambda: hashlib_.append(inner(measure(
                [bench.python, str(PROBES), "hash-hashlib", str(source)], env=env, cwd=cwd,
                capture=True))),
        ]
        if openssl:
            steps.append(lambda: openssl_.append(measure(
                [openssl, "dgst", "-sha256", str(source)], env=env, cwd=cwd)))
        alternate(i, *steps)
    rate = mib / (sum(s.seconds for s in ours) / len(ours))
    return [
        Row.of(f"4. hash {size} vs hashlib.file_digest (in-process)", ours, hashlib_,
               THROUGHPUT, note=f"{rate:,.0f} MiB/s"),
        Row.of(f"4. hash {size} vs openssl dgst -sha256 (process)", ours, openssl_,
               note="" if openssl else "no openssl"),
    ]
