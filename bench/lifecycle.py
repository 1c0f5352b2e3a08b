"""Lifecycle benchmark (issue 6): metric logging in a training loop, metrics show, gc;
(issue 17) the cost of an experiment policy on each checkpoint write.

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


def policy_rows(work: Path, checkpoints: int, rounds: int = 3,
                ) -> list[tuple[str, float, float]]:
    """The same run of ``checkpoints`` checkpoints (one small file, 10 metrics each) into an
    experiment without a policy and one with promotion + keep-best retention, side by
    side, rounds alternating; medians of the per-run wall times."""
    from statistics import median

    from modelbox.autopromote import edit_policy
    from modelbox.names import parse_model

    data = work / "ckpt"
    data.mkdir()
    times: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(rounds):
        for policy in (False, True) if round_ % 2 == 0 else (True, False):
            client = ModelBoxClient(work / f"policy-{round_}-{policy}", create=True)
            client.new_model("ai/best")
            experiment = client.new_experiment("ai/run")
            if policy:
                edit_policy(client.registry, parse_model("ai/run"), promote_to="ai/best",
                            when=["acc>=0.99"], keep_best=5, by="loss", minimize=True)
            started = time.perf_counter()
            for n in range(checkpoints):
                path = data / f"{n}.pt"
                path.write_bytes(os.urandom(256))
                experiment.new_checkpoint(n, metrics={"acc": n / checkpoints,
                                                      "loss": 1 / (n + 1),
                                                      **{f"k{i}": float(i) for i in range(8)}},
                                          files=[path])
            client.flush()
            times[policy].append(time.perf_counter() - started)
            client.close()
    plain, with_policy = median(times[False]), median(times[True])
    return [(f"{checkpoints} checkpoints, no policy (median of {rounds})", plain, 1e9),
            (f"the same with promotion + keep-best 5 (median of {rounds})", with_policy, 1e9),
            ("  ratio with policy / without (target: ours, <= 1.5x)", with_policy / plain,
             1.5)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    steps, models, versions = (100, 100, 5) if args.quick else (1000, 1000, 10)
    work = Path(tempfile.mkdtemp(prefix="modelbox-bench-lifecycle-"))
    try:
        rows = (metrics_rows(work, steps) + gc_rows(work, models, versions)
                + policy_rows(work, 20 if args.quick else 200))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"| {'scenario':<58} | {'measured':>9} | {'target':>8} | verdict |")
    print(f"|{'-' * 60}|{'-' * 11}|{'-' * 10}|---------|")
    failed = False
    for name, seconds, target in rows:
        ok = seconds <= target
        failed |= not ok
        verdict = "-" if args.quick or target >= 1e9 else ("pass" if ok else "FAIL")
        if "ratio" in name:
            print(f"| {name:<58} | {seconds:>8.2f}x | <= {target:>4g} x | {verdict:<7} |")
        elif target >= 1e9:
            print(f"| {name:<58} | {seconds:>8.2f}s | {'-':>8} | {verdict:<7} |")
        else:
            print(f"| {name:<58} | {seconds:>8.2f}s | <= {target:>4g} s | {verdict:<7} |")
    return 1 if failed and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
