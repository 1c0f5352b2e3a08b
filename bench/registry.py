"""Registry-core benchmark: build MODELS x VERSIONS through the Python API, then time the CLI.

    python bench/registry.py                 # 1,000 models x 10 versions (the issue's size)
    python bench/registry.py --quick         # 50 x 4, no pass/fail verdicts

Prints one table: what was measured, the median of the runs, the target and a verdict.
Command timings are wall-clock times of a fresh `modelbox` process, as a user sees them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from modelbox import MLFramework, ModelBoxClient


def build(path: Path, models: int, versions: int) -> tuple[float, float]:
    """Create the registry, one commit per version: versions/s in batches, and one by one."""
    client = ModelBoxClient(path, create=True)
    with client.batch():
        names = [
            client.new_model(f"m{i:04d}", "bench@example.com", f"team{i % 10}", "t")
            for i in range(models)
        ]
    started = time.perf_counter()
    for v in range(versions):
        with client.batch():
            for i, model in enumerate(names):
                tags = ["production"] if v == versions // 2 and i % 3 == 0 else None
                model.new_model_version(f"v{v}", framework=MLFramework.PYTORCH, unique_tags=tags)
    batched = models * versions / (time.perf_counter() - started)
    sample = names[: min(100, models)]
    started = time.perf_counter()
    for model in sample:  # one publish per call, as a script without batch() does
        model.new_model_version("single")
    single = len(sample) / (time.perf_counter() - started)
    client.close()
    return batched, single


def timed(command: list[str], cwd: Path, repeat: int) -> float:
    """Median wall time of running ``command`` ``repeat`` times."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small sizes, no verdicts")
    args = parser.parse_args()
    if args.quick:
        args.models, args.versions, args.repeat = 50, 4, 3
    exe = shutil.which("modelbox") or str(Path(sys.executable).with_name("modelbox"))
    work = Path(tempfile.mkdtemp(prefix="modelbox-bench-"))
    try:
        reg = work / "reg"
        batched, single = build(reg, args.models, args.versions)
        model = "team0/m0000"
        run: Callable[[list[str]], float] = lambda argv: timed([exe, *argv], reg, args.repeat)  # noqa: E731
        rows = [
            (f"create {args.models * args.versions} versions (API, batch())", batched,
             "ver/s", 100.0, True),
            ("create 100 more, one publish each (API)", single, "ver/s", 0.0, True),
            ("modelbox --help", run(["--help"]), "s", 0.25, False),
            (f"modelbox resolve {model}:production", run(["resolve", f"{model}:production"]),
             "s", 0.25, False),
            ("modelbox model list", run(["model", "list"]), "s", 1.0, False),
            (f"modelbox version list {model}", run(["version", "list", model]), "s", 1.0, False),
            (f"modelbox log {model} (cached)", run(["log", model]), "s", 1.0, False),
            ("modelbox check", run(["check"]), "s", 5.0, False),
        ]
        (reg / ".git" / "modelbox" / "commits.jsonl").unlink()
        rows.append((f"modelbox log {model} (cold cache)", timed([exe, "log", model], reg, 1),
                     "s", 1.0, False))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"registry: {args.models} models x {args.versions} versions, "
          f"median of {args.repeat}, {os.cpu_count()} cores")
    print(f"| {'scenario':<44} | {'measured':>15} | {'target':>12} | verdict |")
    print(f"|{'-' * 46}|{'-' * 17}|{'-' * 14}|---------|")
    failed = False
    for name, value, unit, target, higher_is_better in rows:
        ok = value >= target if higher_is_better else value <= target
        failed |= not ok
        verdict = "-" if args.quick else ("pass" if ok else "FAIL")
        sign = ">=" if higher_is_better else "<="
        goal = f"{sign} {target:g} {unit}" if target else "(no target)"
        print(f"| {name:<44} | {value:>9.3f} {unit:<5}| {goal:>12} | {verdict:<7} |")
    return 1 if failed and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
