"""modelbox side by side with s3fs, DVC, GTO and Git: one entry point for every benchmark.

    python bench/run.py                  # every scenario at the issues' sizes, with verdicts
    python bench/run.py --quick          # small sizes, no verdicts (CI: well under 3 minutes)
    python bench/run.py 2 5              # some scenarios (numbers or names, see --help)

It builds its own data, starts its own SeaweedFS (tests/s3server.py), installs DVC and GTO
into bench/.work/peers (kept between runs) and prints one Markdown table: scenario |
modelbox | peer | ratio | target | verdict | peak RSS. Progress goes to stderr; the table
also lands in bench/.work/last-run.md. Exit status: 1 if a target is missed (or cannot be
checked) in a full run, 0 otherwise. bench/README.md explains every row.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchkit import peers
from benchkit.big_registry import big_registry
from benchkit.callbacks import callbacks
from benchkit.harness import Bench, Row, Sizes, StepError, modelbox_commit, table, work_folder
from benchkit.hashing import hashing
from benchkit.ingest import ingest
from benchkit.memory import memory
from benchkit.reach import reach
from benchkit.scale import scale
from benchkit.scale_curve import curve
from benchkit.scale_refs import refs
from benchkit.scale_shards import shards
from benchkit.sharing import sharing
from benchkit.transfers import big_file, folder, noop
from benchkit.versus_gto import versus_gto
from benchkit.web import web
from stress import stress

Scenario = Callable[[Bench], list[Row]]
SCENARIOS: dict[str, tuple[str, Scenario, bool]] = {  # number: (name, function, needs peers)
    "1": ("file", big_file, True),
    "2": ("folder", folder, True),
    "3": ("noop", noop, True),
    "4": ("hash", hashing, False),
    "5": ("gto", versus_gto, True),
    "6": ("registry", big_registry, False),
    "7": ("sharing", sharing, False),
    "8": ("memory", memory, False),
    "9": ("stress", stress, False),
    "10": ("scale", scale, False),
    "11": ("scale-curve", curve, False),
    "12": ("refs", refs, False),
    "13": ("shards", shards, False),
    "14": ("ingest", ingest, False),
    "15": ("web", web, False),
    "16": ("reach", reach, True),
    "17": ("callbacks", callbacks, False),
}
QUICK_PEER_INSTALL_S = 150.0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    names = ", ".join(f"{n}={name}" for n, (name, _, _) in SCENARIOS.items())
    parser = argparse.ArgumentParser(
        description="modelbox vs s3fs, DVC, GTO and Git (bench/README.md).",
        epilog=f"scenarios: {names}")
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        help="numbers or names; default: all")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, one round of the transfers, no verdicts")
    parser.add_argument("--repeat", type=int, help="rounds of the transfers (default 3)")
    parser.add_argument("--fast-repeat", type=int,
                        help="rounds of the short commands (default 5, quick 3)")
    parser.add_argument("--big-mb", type=int, help="size of the large file in MiB (1024)")
    parser.add_argument("--files", type=int, help="files in the folder artifact (2000)")
    parser.add_argument("--no-peers", action="store_true",
                        help="do not install or run DVC and GTO")
    parser.add_argument("--refresh-peers", action="store_true",
                        help="reinstall the peers venv (bench/.work/peers)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--rebuild-scale", action="store_true",
                        help="build the cached registries of scenarios 10-13 again "
                             "(bench/.work/scale)")
    parser.add_argument("--scale-from", type=Path, metavar="PATH",
                        help="seed scenario 10's cached 5,000 x 20 registry from a copy of "
                             "PATH (a registry the build-registry probe made)")
    args = parser.parse_args(argv)
    by_name = {name: number for number, (name, _, _) in SCENARIOS.items()}
    chosen = []
    for item in args.scenarios or list(SCENARIOS):
        number = by_name.get(item, item)
        if number not in SCENARIOS:
            parser.error(f"unknown scenario {item!r}; choose from {names}")
        chosen.append(number)
    args.scenarios = sorted(set(chosen), key=int)
    return args


def _sizes(args: argparse.Namespace) -> Sizes:
    sizes = Sizes(big_mb=64, files=200, gto=(10, 10), gto_scale=1, registry=(50, 4),
                  scale=(50, 10), scale_batches=(100, 500, 20),
                  scale_curve=((10, 10), (50, 10)), scale_refs=(1_000, 10_000),
                  scale_shards=(3, 20, 5)) if args.quick else Sizes()
    if args.big_mb:
        sizes.big_mb = args.big_mb
    if args.files:
        sizes.files = args.files
    if args.repeat:
        sizes.scale_rounds = args.repeat
    return sizes


def _describe_machine(bench: Bench, commit: str) -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / (1 << 20):.0f} GiB RAM"
    peer = bench.peers.describe() if bench.peers else (
        f"unavailable ({bench.peer_problem})" if bench.peer_problem else "not needed")
    s = bench.sizes
    return "\n".join([
        f"{time.strftime('%Y-%m-%d %H:%M')}, modelbox {commit}, Python "
        f"{platform.python_version()}, {os.cpu_count()} cores ({cpu}){memory}, "
        f"{platform.system()} {platform.release()}",
        f"peers: {peer}; S3: SeaweedFS on loopback",
        f"sizes: file {s.big_mb} MiB, folder {s.files} x {s.file_kb} KiB, GTO "
        f"{s.gto[0]}x{s.gto[1]}" + (f" and x{s.gto_scale}" if s.gto_scale > 1 else "")
        + f", registry {s.registry[0]}x{s.registry[1]}, scale {s.scale[0]}x{s.scale[1]}; "
        f"medians of {bench.repeat} rounds "
        f"(transfers, push/clone) / {bench.fast_repeat} (commands)"
        + ("; --quick: no verdicts" if bench.quick else ""),
    ])


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    repeat = args.repeat or (1 if args.quick else 3)
    fast_repeat = args.fast_repeat or (3 if args.quick else 5)
    needs_peers = any(SCENARIOS[n][2] for n in args.scenarios) and not args.no_peers
    commit = modelbox_commit()
    with contextlib.ExitStack() as stack:
        work = stack.enter_context(work_folder(args.keep))
        bench = Bench(args.quick, repeat, fast_repeat, _sizes(args), work, stack,
                      rebuild_scale=args.rebuild_scale,
                      scale_from=args.scale_from.resolve() if args.scale_from else None)
        if args.no_peers:
            bench.peer_problem = "--no-peers"
        elif needs_peers:
            found, problem = peers.ensure(
                refresh=args.refresh_peers, timeout=QUICK_PEER_INSTALL_S if args.quick else None)
            bench.peers, bench.peer_problem = found, problem
            if found:
                print(f"peers: {found.describe()} (venv {peers.VENV})", file=sys.stderr)
            else:
                print(f"peer unavailable: {problem}")
        rows: list[Row] = []
        broken: list[str] = []
        for number in args.scenarios:
            name, scenario, _ = SCENARIOS[number]
            started = time.perf_counter()
            bench.say(f"scenario {number} ({name})")
            try:
                rows += scenario(bench)
            except StepError as error:
                broken.append(f"scenario {number} ({name}) failed: {error}")
                print(broken[-1], file=sys.stderr)
            bench.say(f"scenario {number} done in {time.perf_counter() - started:.0f} s")
        header = _describe_machine(bench, commit)
        if modelbox_commit() != commit:
            broken.append(f"modelbox changed during the run ({commit} -> {modelbox_commit()}): "
                          "run again on a quiet checkout")
    report = f"{header}\n\n{table(rows, args.quick)}\n" + "".join(f"\n{b}\n" for b in broken)
    print(report)
    last = peers.VENV.parent / "last-run.md"
    last.parent.mkdir(parents=True, exist_ok=True)
    last.write_text(report)
    if broken:
        return 1
    missed = [r for r in rows if r.verdict(args.quick) in ("FAIL", "n/a")]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
