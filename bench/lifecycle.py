"""Lifecycle benchmark (issue 6): metric logging in a training loop, metrics show, gc.

    python bench/lifecycle.py              # 10,000 points; gc over 10,000 versions / 20,000 objects
    python bench/lifecycle.py --quick      # 1,000 points; gc over 500 versions, no verdicts

Prints one table: scenario, measured, target, verdict. The registry for gc is built through
the Python API in batches (two small artifacts per version on the local store).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from modelbox import ModelBoxClient

MODELBOX = str(Path(sys.executable).with_name("modelbox"))


def timed(argv: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run([MODELBOX, *argv], cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def metrics_rows(work: Path, steps: int) -> list[tuple[str, float, float]]:
    client = ModelBoxClient(work / "metrics", create=True)
    experiment = client.new_experiment("ai/run-1")
    started = time.perf_counter()
    for step in range(steps):
        experiment.log_metrics({f"k{i}": step * 0.001 + i for i in range(10)}, step=step)
    client.flush()
    logged = time.perf_counter() - started
    # One point a call: a journal line (one os.write) per point.
    single_run = client.new_experiment("ai/run-2")
    started = time.perf_counter()
    for step in range(steps * 10):
        single_run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    client.flush()
    single = time.perf_counter() - started
    client.close()
    shown = timed(["metrics", "show", "ai/run-1", "--json"], work / "metrics")
    points = steps * 10
    return [(f"log_metrics {points:,} points (10 keys), commits included", logged, 2.0),
            (f"log_metrics {points:,} points (1 key a call), commits incl.", single, 2.0),
            (f"modelbox metrics show of {points:,} points", shown, 1.0)]


def gc_rows(work: Path, models: int, versions: int) -> list[tuple[str, float, float]]:
    client = ModelBoxClient(work / "gc", create=True)
    data = work / "data"
    data.mkdir()
    with client.batch():
        made = [client.new_model(f"m{i:04d}", "o", f"team{i % 10}") for i in range(models)]
    count = 0
    for v in range(versions):
        with client.batch():
            for model in made:
                files = []
                for _ in range(2):
                    path = data / f"{count}.bin"
                    path.write_bytes(os.urandom(64))
                    files.append(path)
                    count += 1
                model.new_model_version(f"v{v}").upload_artifact(files)
    client.close()
    seconds = timed(["gc", "--dry-run"], work / "gc")
    return [(f"gc --dry-run, {models * versions:,} versions / {count:,} objects", seconds, 10.0)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    steps, models, versions = (100, 100, 5) if args.quick else (1000, 1000, 10)
    work = Path(tempfile.mkdtemp(prefix="modelbox-bench-lifecycle-"))
    try:
        rows = metrics_rows(work, steps) + gc_rows(work, models, versions)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"| {'scenario':<58} | {'measured':>9} | {'target':>8} | verdict |")
    print(f"|{'-' * 60}|{'-' * 11}|{'-' * 10}|---------|")
    failed = False
    for name, seconds, target in rows:
        ok = seconds <= target
        failed |= not ok
        verdict = "-" if args.quick else ("pass" if ok else "FAIL")
        print(f"| {name:<58} | {seconds:>8.2f}s | <= {target:>4g} s | {verdict:<7} |")
    return 1 if failed and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
