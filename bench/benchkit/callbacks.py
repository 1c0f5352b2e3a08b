"""Scenario 17: a training loop with and without the training callbacks' run (issue 17).

The loop is ``bench/callbacks.py``'s child: ~20 ms NumPy steps logging 10 metrics a step
and, every ``every`` seconds, writing a checkpoint of ``mb`` MiB (a new file; the one
before last deleted, as ``save_top_k=2`` does), handed, with modelbox, to
:class:`modelbox.integrations._run.TrainingRun` (what every framework callback drives).
Rounds alternate without and with; medians. Rows as scenario 14's: the loop's slow-down
(<= 5 %), the training thread's time inside the run's calls, the last checkpoint's delay
into the registry (<= 5 s, local store) and the peak RSS beyond the loop's own
(<= 200 MB); and, without a target, the CPU time of the run's background thread (all
threads but the training thread), which a loaded machine changes far less than wall
times. Full: 120 s, 200 MiB every 10 s, 3 rounds; quick: 8 s, 16 MiB every 2 s, 1.
"""

from __future__ import annotations

import functools

from benchkit.harness import BENCH, Bench, Row, Sample, Target, alternate, measure

CHILD = BENCH / "callbacks.py"
#: One BLAS thread on both sides: spinning BLAS threads would make the loop's CPU time
#: (and its wall time on a loaded machine) depend on what else runs.
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _sizes(quick: bool) -> tuple[float, float, int]:
    return (8.0, 2.0, 16) if quick else (120.0, 10.0, 200)


def _reps(bench: Bench) -> int:
    out = measure([bench.python, str(CHILD), "--calibrate"], env=bench.env(**ONE_THREAD),
                  cwd=bench.work, capture=True).output
    return int(out.strip().splitlines()[-1])


def callbacks(bench: Bench) -> list[Row]:
    seconds, every, mb = _sizes(bench.quick)
    reps = _reps(bench)
    bench.say(f"17: {reps} matrix products make a ~20 ms step; {seconds:g} s, "
              f"{mb} MiB every {every:g} s")
    alone: list[Sample] = []
    ours: list[Sample] = []
    stall: list[Sample] = []
    delay: list[Sample] = []
    extra: list[Sample] = []
    cpu: dict[bool, list[float]] = {False: [], True: []}  # process CPU seconds

    def round_of(with_run: bool, i: int) -> Sample:
        work = bench.fresh(f"callbacks-{i}-{int(with_run)}")
        if with_run:
            from modelbox import ModelBoxClient

            ModelBoxClient(work / "reg", create=True).close()
        done = measure([bench.python, str(CHILD), "--child", str(work), str(seconds),
                        str(every), str(mb), str(reps), str(int(with_run))],
                       env=bench.env(MODELBOX_LOCK_TIMEOUT="120", **ONE_THREAD), cwd=work,
                       capture=True)
        wall, inside, late, _, used = (float(v) for v in done.output.split()[-5:])
        if with_run:
            stall.append(Sample(inside, 0))
            delay.append(Sample(late, 0))
        cpu[with_run].append(used)
        return Sample(wall, done.rss_mb)

    for i in range(bench.repeat):
        bench.say(f"17: round {i + 1} of {bench.repeat}")
        without, with_run = alternate(i, functools.partial(round_of, False, i),
                                      functools.partial(round_of, True, i))
        alone.append(without)
        ours.append(with_run)
        extra.append(Sample(with_run.seconds, max(0.0, with_run.rss_mb - without.rss_mb)))
    rows = [
        Row.of("17. training loop with callbacks (TrainingRun), local store", ours, alone,
               Target("ratio", 1.05)),
        Row.of("17. training thread inside the run's calls", stall),
        Row.of("17. CPU (user+sys) of the run's background thread", [
            Sample(c, 0) for c in cpu[True]], note="no target; barely changed by load"),
        Row.of("17. last checkpoint in the registry after written, local", delay,
               target=Target("seconds", 5)),
        Row.of("17. callbacks' peak RSS beyond the loop's own", extra,
               target=Target("rss", 200)),
    ]
    for row in rows[:4]:
        row.ours_rss = row.peer_rss = None
    return rows

