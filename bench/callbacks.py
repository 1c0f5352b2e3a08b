"""Training-callback benchmark (issue 17): what the callbacks' uploads cost a training loop.

    python bench/callbacks.py              # 120 s loop, 200 MB checkpoint every 10 s, 3 rounds
    python bench/callbacks.py --quick      # 12 s loop, 20 MB every 3 s, 1 round, no verdicts
    python bench/run.py 17 [--quick]       # the same loop as scenario 17, in run.py's table

The same loop runs without modelbox and with :class:`modelbox.integrations._run.TrainingRun`
(what every framework callback drives), alternating, medians of the rounds: each step is
~20 ms of NumPy work (calibrated once) and logs 10 metrics; every ``--every`` seconds it
writes a checkpoint of ``--mb`` MB (a new file; the one before last is deleted, as
``save_top_k=2`` would) and, with modelbox, hands it to the run. Rows: the loop's slow-down
(target <= 5 %), the time the training thread spent in the run's calls, the delay from the
last checkpoint written to it being in the registry (target <= 5 s, local store), and the
process's peak RSS beyond the loop's own (target <= 200 MB). Needs NumPy.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = "--child"


def _calibrate() -> int:
    """Repetitions of a 200x200 matmul that take ~20 ms here: from the median of many
    timings, so that one moment of load cannot make it 1 (nor an idle moment 10x)."""
    a = np.random.default_rng(0).random((200, 200))
    timings = []
    for _ in range(25):
        started = time.perf_counter()
        for _ in range(4):
            a @ a
        timings.append((time.perf_counter() - started) / 4)
    return max(1, round(0.02 / max(statistics.median(timings), 1e-6)))


def _loop(work: Path, seconds: float, every: float, mb: int, reps: int, with_run: bool) -> None:
    """One round, in its own process (a clean RSS); prints ``wall stall delay rss_mb
    cpu_seconds``: the user + sys time of every thread but the training thread (the run's
    background work; the loop's own CPU varies with load more than that is large)."""
    run = None
    if with_run:
        from modelbox.integrations._run import TrainingRun

        run = TrainingRun("bench/run", work / "reg", framework="other", source="bench")
        run.start({"steps_per_checkpoint": every / 0.02})
    a = np.random.default_rng(0).random((200, 200))
    blob = np.random.default_rng(1).bytes(mb * 2**20)
    steps = int(seconds / 0.02)
    per_checkpoint = max(1, int(every / 0.02))
    saved: list[Path] = []
    stall = 0.0
    last_written = 0.0
    started = time.perf_counter()
    for step in range(1, steps + 1):
        for _ in range(reps):
            a @ a
        metrics = {f"m{i}": step * 0.001 + i for i in range(10)}
        if run is not None:
            began = time.perf_counter()
            run.log_metrics(metrics, step)
            stall += time.perf_counter() - began
        if step % per_checkpoint == 0:
            path = work / f"ckpt-{step}.bin"
            path.write_bytes(blob[:-8] + step.to_bytes(8, "big"))  # each one new content
            saved.append(path)
            if len(saved) > 2:
                saved.pop(0).unlink()
            last_written = time.time()
            if run is not None:
                began = time.perf_counter()
                run.checkpoint([path], f"step-{step}", step=step, metrics=metrics)
                stall += time.perf_counter() - began
    wall = time.perf_counter() - started
    delay = 0.0
    if run is not None:
        run.close()  # waits for the last upload
        delay = time.time() - last_written
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss_mb = usage.ru_maxrss / 1024
    others = usage.ru_utime + usage.ru_stime - time.thread_time()  # not the training thread
    print(f"{wall} {stall} {delay} {rss_mb} {others}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--every", type=float)
    parser.add_argument("--mb", type=int)
    parser.add_argument("--rounds", type=int)
    args = parser.parse_args(argv)
    seconds = args.seconds or (12.0 if args.quick else 120.0)
    every = args.every or (3.0 if args.quick else 10.0)
    mb = args.mb or (20 if args.quick else 200)
    rounds = args.rounds or (1 if args.quick else 3)
    reps = _calibrate()
    results: dict[bool, list[list[float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="modelbox-bench-cb-") as tmp:
        for number in range(rounds):
            for with_run in (False, True):
                work = Path(tmp) / f"r{number}-{int(with_run)}"
                work.mkdir()
                if with_run:
                    from modelbox import ModelBoxClient

                    ModelBoxClient(work / "reg", create=True).close()
                done = subprocess.run(
                    [sys.executable, __file__, CHILD, str(work), str(seconds), str(every),
                     str(mb), str(reps), str(int(with_run))],
                    check=False, capture_output=True, text=True)
                if done.returncode:
                    sys.exit(f"bench/callbacks.py: round {number + 1} failed:\n{done.stderr}")
                out = done.stdout.split()
                results[with_run].append([float(v) for v in out])
                print(f"round {number + 1} {'modelbox' if with_run else 'baseline'}: "
                      f"wall {float(out[0]):.2f} s", file=sys.stderr)
    base = statistics.median(r[0] for r in results[False])
    withr = statistics.median(r[0] for r in results[True])
    slow = (withr / base - 1) * 100
    stall = statistics.median(r[1] for r in results[True])
    delay = statistics.median(r[2] for r in results[True])
    rss = statistics.median(r[3] for r in results[True]) - statistics.median(
        r[3] for r in results[False])
    checkpoints = int(seconds / every)
    rows = [
        (f"loop {seconds:g} s, {checkpoints} x {mb} MB checkpoints, 10 metrics/step: slow-down",
         f"{slow:+.1f} % ({base:.1f} -> {withr:.1f} s)", "<= 5 %", slow <= 5),
        ("training thread inside the run's calls (staging, journal)", f"{stall:.2f} s",
         "", True),
        ("last checkpoint written -> in the registry (local store)", f"{delay:.2f} s",
         "<= 5 s", delay <= 5),
        ("peak RSS beyond the loop's own", f"{rss:.0f} MB", "<= 200 MB", rss <= 200),
    ]
    print(f"| scenario (medians of {rounds} alternating rounds) | measured | target | verdict |")
    print("|---|---|---|---|")
    for name, measured, target, ok in rows:
        verdict = "-" if args.quick or not target else ("met" if ok else "MISSED")
        print(f"| {name} | {measured} | {target} | {verdict} |")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--calibrate"]:  # for bench/run.py's scenario 17
        print(_calibrate())
        sys.exit(0)
    if len(sys.argv) > 1 and sys.argv[1] == CHILD:
        work, seconds, every, mb, reps, with_run = sys.argv[2:8]
        os.environ.setdefault("MODELBOX_LOCK_TIMEOUT", "120")
        _loop(Path(work), float(seconds), float(every), int(mb), int(reps), with_run == "1")
        sys.exit(0)
    sys.exit(main())
