"""A stand-in training loop for scenario 14: ``python train_loop.py OUT STEPS EVERY MB WORK``.

``STEPS`` steps of numpy work (a matrix product of ``WORK`` rows, ~20 ms, calibrated by
the caller), 10 metrics a step appended to ``OUT/logs/metrics.csv`` as Lightning's
CSVLogger writes them, and every ``EVERY`` steps a checkpoint of ``MB`` MiB written in
place as torch's zip (``OUT/epoch=E-step=S.ckpt``). The same loop runs with and without
the watcher: its wall time is what the watcher may slow down. Prints that time, and writes
``OUT/../written.json``: each checkpoint's name and when its last byte was written, and
``OUT/../phases.json``: the seconds spent in the steps (product and metrics) and in
writing the checkpoints, to tell which of the two a watcher slows down.
"""

import json
import sys
import time
import zipfile
from pathlib import Path

import numpy as np


def main() -> int:
    out, steps, every, megabytes, work = (Path(sys.argv[1]), int(sys.argv[2]),
                                          int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    (out / "logs").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    a, b = rng.random((work, 256)), rng.random((256, 256))
    written = []
    log = (out / "logs" / "metrics.csv").open("w")
    log.write("epoch,step," + ",".join(f"m{i}" for i in range(10)) + "\n")
    compute = writing = 0.0
    started = time.perf_counter()
    for step in range(1, steps + 1):
        begun = time.perf_counter()
        loss = float((a @ b).mean())
        log.write(f"{step // every},{step},"
                  + ",".join(f"{loss / (i + 1):.6f}" for i in range(10)) + "\n")
        stepped = time.perf_counter()
        compute += stepped - begun
        if step % every == 0:
            log.flush()
            epoch = step // every - 1
            name = f"epoch={epoch}-step={step}.ckpt"
            with zipfile.ZipFile(out / name, "w") as archive:
                archive.writestr(f"epoch={epoch}-step={step}/data.pkl", b"\x80\x02}q\x00.")
                with archive.open(f"epoch={epoch}-step={step}/data/0", "w",
                                  force_zip64=True) as entry:
                    for _ in range(megabytes):
                        entry.write(rng.bytes(1 << 20))  # new bytes: nothing to dedupe
            written.append((name, time.time()))
            writing += time.perf_counter() - stepped
    log.close()
    elapsed = time.perf_counter() - started
    (out.parent / "written.json").write_text(json.dumps(written))
    (out.parent / "phases.json").write_text(json.dumps({"steps": compute,
                                                         "checkpoints": writing}))
    print(elapsed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
