"""Scenario 14: a training loop with and without ``modelbox experiment watch`` (issue 17).

The loop (``train_loop.py``) takes 20 ms numpy steps, logs 10 metrics a step to a CSV and
writes a 200 MiB checkpoint every 10 s (500 steps), for 2 minutes (6,000 steps). Each
round runs it alone, with the watcher on a local store, and with the watcher on SeaweedFS
(in alternating order), and with a sidecar that uploads each checkpoint to the same
SeaweedFS with s3fs's own ``put_file`` and no modelbox (``plain_upload.py``: the share of
the S3 row that is the server's, not the watcher's); 3 rounds, medians. Targets: the loop
is slowed by at most 5% (its median wall time with a watcher against without; on S3,
against the loop beside the plain upload, since the server here runs on the loop's own
two cores, as a remote S3 service never does), the watcher's peak RSS is at most 200 MB,
and the last checkpoint is in the registry at most 5 s (local) / 15 s (S3) after its last
byte was written. Quick mode: 150 steps, a 16 MiB checkpoint every 50, one round.
More rows, without a target: the watcher process's CPU time (user + sys) per
checkpoint on each store, which a loaded machine changes far less than wall times, and
the CPU time the S3 server (SeaweedFS, on this machine's same cores) spent during the S3
round: work a remote S3 service does elsewhere, which here competes with the loop.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchkit.harness import LAUNCHER, Bench, Row, Sample, StepError, Target, alternate, run

LOOP = Path(__file__).with_name("train_loop.py")
PLAIN = Path(__file__).with_name("plain_upload.py")
EXP = "bench/run"
SLOWDOWN = Target("ratio", 1.05)
RSS = Target("rss", 200)


def _calibrate(seconds: float = 0.02) -> int:
    """Rows of the loop's matrix product that take ``seconds`` on this machine."""
    import numpy as np

    os.sync()  # a writeback of earlier runs' files would make the steps look slow
    rng = np.random.default_rng(0)
    b = rng.random((256, 256))
    rows = 256
    for attempt in range(12):
        a = rng.random((rows, 256))
        took = []
        for _ in range(5):
            started = time.perf_counter()
            float((a @ b).mean())
            took.append(time.perf_counter() - started)
        # The median: one product slowed by anything else on the machine must not make
        # the loop run for a minute instead of two.
        scale = seconds / max(sorted(took)[2], 1e-6)
        rows = max(16, int(rows * scale))
        if attempt >= 4 and abs(scale - 1) < 0.03:
            break
    return rows


class _Sizes:
    def __init__(self, quick: bool) -> None:
        self.steps, self.every, self.mb = (150, 50, 16) if quick else (6000, 500, 200)


def _train(bench: Bench, out: Path, sizes: _Sizes, work: int) -> tuple[
        float, list[tuple[str, float]], dict[str, float]]:
    """The loop's wall time, its checkpoints (name, when written) and its phases' seconds
    (``steps``, ``checkpoints``)."""
    os.sync()  # the last run's checkpoints are written back before this one, not during
    done = run([bench.python, str(LOOP), str(out), str(sizes.steps), str(sizes.every),
                str(sizes.mb), str(work)], env=bench.env(), cwd=out.parent)
    written = json.loads((out.parent / "written.json").read_text())
    phases = json.loads((out.parent / "phases.json").read_text())
    seconds = float(done.strip().splitlines()[-1])
    bench.say(f"14: the loop took {seconds:.1f} s ({out.parent.name}): steps "
              f"{phases['steps']:.1f} s, checkpoint writes {phases['checkpoints']:.1f} s")
    return seconds, [(n, float(t)) for n, t in written], phases


def _with_watcher(bench: Bench, sizes: _Sizes, work: int, s3: bool, i: int) -> tuple[
        float, Sample, float, float, dict[str, float]]:
    """The loop with a watcher: its time, the watcher's sample, the last checkpoint's lag,
    the watcher's CPU seconds per checkpoint and the loop's phases."""
    root = bench.fresh(f"ingest-{'s3' if s3 else 'local'}-{i}")
    out, registry = root / "out", root / "registry"
    out.mkdir()
    env = bench.s3_env() if s3 else bench.env()
    init = [bench.modelbox, "init", str(registry)]
    if s3:
        init += ["--store", f"s3://bench/ingest-{i}-{os.getpid()}"]
    run(init, env=env, cwd=root)
    handle, report = tempfile.mkstemp(prefix="bench-watch-", suffix=".json")
    os.close(handle)
    lines = root / "watch.jsonl"
    with lines.open("w") as stdout, tempfile.TemporaryFile() as err:
        watcher = subprocess.Popen(
            [sys.executable, "-I", "-S", str(LAUNCHER), report, bench.modelbox, "--repo",
             str(registry), "experiment", "watch", EXP, str(out), "--interval", "0.5",
             "--json"], env=env, cwd=root, stdout=stdout, stderr=err,
            stdin=subprocess.DEVNULL)
        try:
            seconds, written, phases = _train(bench, out, sizes, work)
            last = written[-1][0]
            deadline = time.time() + 120
            landed = None
            while time.time() < deadline and landed is None:
                for line in lines.read_text().splitlines():
                    if json.loads(line)["source"] == last:
                        landed = time.time()
                time.sleep(0.05)
            if landed is None:
                err.seek(0)
                raise StepError(f"the watcher never ingested {last}: "
                                f"{err.read().decode(errors='replace')[-400:]}")
        finally:
            watcher.send_signal(signal.SIGTERM)  # the launcher passes it on
            watcher.wait(timeout=120)
        code, rss_kib, elapsed, cpu = json.loads(Path(report).read_text() or "[-1, 0, 0, 0]")
        os.unlink(report)
        if code != 0:
            err.seek(0)
            raise StepError(f"the watcher exited {code}: {err.read().decode()[-400:]}")
    count = len(lines.read_text().splitlines())
    if count != len(written):
        raise StepError(f"{count} checkpoints ingested of {len(written)} written")
    return (seconds, Sample(elapsed, rss_kib / 1024), landed - written[-1][1],
            cpu / count, phases)


def _with_plain_upload(bench: Bench, sizes: _Sizes, work: int, i: int) -> tuple[
        float, dict[str, float]]:
    """The loop while a sidecar without modelbox uploads each checkpoint to the same S3
    server (``plain_upload.py``): the loop's time and phases."""
    root = bench.fresh(f"ingest-plain-{i}")
    out = root / "out"
    out.mkdir()
    count = sizes.steps // sizes.every
    with tempfile.TemporaryFile() as err:
        sidecar = subprocess.Popen(
            [bench.python, str(PLAIN), str(out), f"s3://bench/plain-{i}-{os.getpid()}",
             str(count)], env=bench.s3_env(), cwd=root, stdout=subprocess.DEVNULL,
            stderr=err, stdin=subprocess.DEVNULL)
        try:
            seconds, _, phases = _train(bench, out, sizes, work)
            code = sidecar.wait(timeout=120)
        finally:
            if sidecar.poll() is None:
                sidecar.kill()
                sidecar.wait()
        if code != 0:
            err.seek(0)
            raise StepError(f"the plain upload exited {code}: {err.read().decode()[-400:]}")
    return seconds, phases


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ingest(bench: Bench) -> list[Row]:
    sizes = _Sizes(bench.quick)
    work = _calibrate()
    bench.say(f"14: {work} rows make a ~20 ms step; {sizes.steps} steps, "
              f"{sizes.mb} MiB every {sizes.every}")
    alone: list[Sample] = []
    local: list[Sample] = []
    remote: list[Sample] = []
    plain: list[Sample] = []
    watchers: list[Sample] = []
    lag_local: list[Sample] = []
    lag_s3: list[Sample] = []
    cpu_local: list[Sample] = []
    cpu_s3: list[Sample] = []
    server: list[Sample] = []
    # The loop's two phases, by run: "alone", "local", "s3" -> "steps"/"checkpoints".
    phases: dict[str, dict[str, list[Sample]]] = {
        run: {"steps": [], "checkpoints": []} for run in ("alone", "local", "s3", "plain")}

    def took(run: str, seconds: dict[str, float]) -> None:
        for phase, samples in phases[run].items():
            samples.append(Sample(seconds[phase], 0))

    def without() -> None:
        out = bench.fresh("ingest-alone") / "out"
        out.mkdir()
        seconds, _, split = _train(bench, out, sizes, work)
        alone.append(Sample(seconds, 0))
        took("alone", split)

    def with_watcher(s3: bool) -> None:
        pid = bench.s3().process.pid if s3 else None
        before = _cpu_seconds(pid) if pid else 0.0
        seconds, sample, lag, per_checkpoint, split = _with_watcher(bench, sizes, work, s3,
                                                                    len(watchers))
        took("s3" if s3 else "local", split)
        if pid:
            server.append(Sample(_cpu_seconds(pid) - before, 0))
        (cpu_s3 if s3 else cpu_local).append(Sample(per_checkpoint, 0))
        (remote if s3 else local).append(Sample(seconds, 0))
        watchers.append(sample)
        (lag_s3 if s3 else lag_local).append(Sample(lag, 0))

    def with_plain_upload() -> None:
        seconds, split = _with_plain_upload(bench, sizes, work, len(plain))
        took("plain", split)
        plain.append(Sample(seconds, 0))

    for i in range(bench.repeat):
        bench.say(f"14: round {i + 1} of {bench.repeat}")
        alternate(i, without, lambda: with_watcher(False), lambda: with_watcher(True),
                  with_plain_upload)
    rows = [
        Row.of("14. training loop with watcher, local store", local, alone, SLOWDOWN),
        Row.of("14. training loop with watcher, S3 store", remote, alone,
               note="no target; includes the S3 server's CPU on the loop's own cores"),
        Row.of("14. training loop with a plain s3fs upload of each checkpoint", plain, alone,
               note="no target; no modelbox: the S3 server's share of the S3 row"),
        Row.of("14. training loop, watcher on S3 against the plain upload", remote, plain,
               SLOWDOWN, note="the S3 slow-down target: what the watcher adds to an upload"),
        Row.of("14. watcher peak RSS (either store)", watchers, target=RSS),
        Row.of("14. last checkpoint in the registry after written, local", lag_local,
               target=Target("seconds", 5)),
        Row.of("14. last checkpoint in the registry after written, S3", lag_s3,
               target=Target("seconds", 15)),
        Row.of("14. watcher CPU (user+sys) per checkpoint, local store", cpu_local,
               note="no target; barely changed by load"),
        Row.of("14. watcher CPU (user+sys) per checkpoint, S3 store", cpu_s3,
               note="no target; barely changed by load"),
        Row.of("14. S3 server (SeaweedFS) CPU (user+sys) during the S3 round", server,
               note="no target; a remote S3 does this elsewhere"),
        *(Row.of(f"14. the loop's {what}, {store} against alone",
                 phases[run][phase], phases["alone"][phase],
                 note="no target; which phase the watcher slows")
          for phase, what in (("steps", "steps (product, metrics)"),
                              ("checkpoints", "checkpoint writes"))
          for run, store in (("local", "watcher on a local store"), ("s3", "watcher on S3"),
                             ("plain", "plain S3 upload"))),
    ]
    for row in rows:
        if row.target is not RSS:  # the loop's and the lag's RSS are not measured
            row.ours_rss = row.peer_rss = None
    return rows
