"""Stress (issue 13): ``kill -9`` at random points of real commands, 100 times each.

    python bench/stress.py                 # 100 kills each of the four commands
    python bench/stress.py --tries 5       # a quick look
    python bench/run.py stress [--quick]   # scenario 9 of the benchmark (quick: 5 each)

For each of `version create --tag`, `pull` (of 300 versions), `artifact add` and `get`: start
the command as a real process, SIGKILL it after a random delay spread over its measured
duration (seeded), run one ordinary write (the next write must finish what the kill cut
short), then require a clean `git status`, `modelbox check` exit 0 and the old or the new
state entirely (tests/kill9.py holds the scenarios, shared with the test suite). Prints one
table: command | tries | killed | recovered | failures. Exit status 1 if any try failed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from benchkit.harness import ROOT, Bench, Row, Target

if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

from kill9 import COMMANDS, SCENARIOS, Cli, Outcome, kill_loop

SEED = 13


def process_cli(modelbox: str) -> Cli:
    """The recovery write and `check` as real processes too (the tests run them in-process)."""

    def cli(argv: Sequence[str]) -> tuple[int, str, str]:
        proc = subprocess.run([modelbox, *argv], capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr

    return cli


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """Run with ``env`` as the whole environment (the pull scenario builds its registry
    through the Python API in this process), then restore it."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_all(modelbox: str, tries: int, work: Path,
            commands: Sequence[str] = COMMANDS) -> list[Outcome]:
    outcomes = []
    for n, command in enumerate(commands):
        root = work / f"s{n}"
        root.mkdir(parents=True)
        outcomes.append(kill_loop(SCENARIOS[command](root, modelbox, process_cli(modelbox)),
                                  tries, seed=SEED))
    return outcomes


def table(outcomes: Sequence[Outcome]) -> str:
    head = ["command", "tries", "killed mid-run", "recovered", "failures"]
    rows = [[o.command, str(o.tries), str(o.killed), str(o.recovered), str(len(o.failures))]
            for o in outcomes]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), rule, *map(line, rows)])


def stress(bench: Bench) -> list[Row]:
    """Scenario 9: every kill must be recovered (``recovered >= tries``)."""
    tries = 5 if bench.quick else 100
    work = bench.fresh("stress")
    with environment(bench.env()):
        outcomes = run_all(bench.modelbox, tries, work)
    bench.say("kill -9 stress:\n" + table(outcomes))
    for outcome in outcomes:
        for failure in outcome.failures[:5]:
            bench.say(f"{outcome.command}: {failure}")
    return [
        Row(f"kill -9 `{o.command}` then one write: recovered", float(o.recovered),
            target=Target("rate", float(tries)), unit="tries",
            note=f"{o.killed} of {o.tries} killed mid-run, {len(o.failures)} failed")
        for o in outcomes
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=100, help="kills per command (100)")
    parser.add_argument("commands", nargs="*", metavar="COMMAND",
                        help=f"some of: {', '.join(map(repr, COMMANDS))} (default: all)")
    args = parser.parse_args(argv)
    for command in args.commands:
        if command not in COMMANDS:
            parser.error(f"unknown command {command!r}; choose from {', '.join(COMMANDS)}")
    modelbox = str(Path(sys.executable).with_name("modelbox"))
    with tempfile.TemporaryDirectory(prefix="modelbox-stress-") as work:
        outcomes = run_all(modelbox, args.tries, Path(work), args.commands or COMMANDS)
    print(table(outcomes))
    for outcome in outcomes:
        for failure in outcome.failures:
            print(f"{outcome.command}: {failure}", file=sys.stderr)
    return 1 if any(o.failures for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
