"""Running and measuring processes, the shared state of a run, and the result table.

Every number in the table comes from a child process, started by ``launch.py``: its wall
time (from fork to exit) and its peak RSS (``ru_maxrss`` from ``os.wait4``).
Where a row says "in-process", the child measures the call itself and prints it, so
interpreter start-up and imports are left out on both sides.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

if TYPE_CHECKING:
    from s3server import S3Server

    from benchkit.peers import Peers

BENCH = Path(__file__).resolve().parents[1]
ROOT = BENCH.parent
PROBES = Path(__file__).with_name("probes.py")
LAUNCHER = Path(__file__).with_name("launch.py")
BUCKET = "bench"
T = TypeVar("T")


class StepError(Exception):
    """A command the benchmark runs failed; the message carries its stderr's tail."""


@dataclass(frozen=True)
class Sample:
    """One process: wall seconds, peak RSS in MB, and its stdout when captured."""

    seconds: float
    rss_mb: float
    output: str = ""


def measure(argv: Sequence[str], *, env: dict[str, str], cwd: Path,
            capture: bool = False) -> Sample:
    """Run ``argv`` to completion through the launcher; raise StepError if it fails."""
    handle, report = tempfile.mkstemp(prefix="bench-measure-", suffix=".json")
    os.close(handle)
    try:
        with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
            launcher = [sys.executable, "-I", "-S", str(LAUNCHER), report, *argv]
            done = subprocess.run(launcher, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                  stdout=out if capture else subprocess.DEVNULL, stderr=err,
                                  check=False)
            code, rss_kib, seconds, *_ = json.loads(Path(report).read_text() or "[-1, 0, 0]")
            if done.returncode != 0 or code != 0:
                err.seek(0)
                tail = err.read().decode(errors="replace").strip().splitlines()[-8:]
                raise StepError(f"`{' '.join(argv)}` exited with {code}:\n  "
                                + "\n  ".join(tail))
            out.seek(0)
            return Sample(seconds, rss_kib / 1024, out.read().decode() if capture else "")
    finally:
        os.unlink(report)


def inner(sample: Sample) -> Sample:
    """A probe's own timing (the last line of its output) instead of the process's."""
    return Sample(float(sample.output.strip().splitlines()[-1]), sample.rss_mb, sample.output)


def run(argv: Sequence[str], *, env: dict[str, str], cwd: Path) -> str:
    """An untimed setup step; its stdout."""
    done = subprocess.run(list(argv), env=env, cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-8:]
        raise StepError(f"`{' '.join(argv)}` exited with {done.returncode}:\n  "
                        + "\n  ".join(tail))
    return done.stdout


def modelbox_commit() -> str:
    """The last commit that changed anything outside bench/, ``-dirty`` if tracked files
    outside bench/ are modified: what the numbers measure."""
    git = ["git", "-C", str(ROOT)]
    outside = ["--", ".", ":(exclude)bench"]
    commit = subprocess.run([*git, "log", "-1", "--format=%h", *outside], capture_output=True,
                            text=True, check=False).stdout.strip() or "?"
    changed = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no", *outside],
                             capture_output=True, text=True, check=False).stdout.strip()
    return f"{commit}-dirty" if changed else commit


def alternate(i: int, *steps: Callable[[], T]) -> list[T]:
    """Run ``steps`` in order on even ``i`` and in reverse on odd ``i``; results in order.

    Machines are noisy and caches warm up: alternating who goes first spreads both evenly.
    """
    order = range(len(steps)) if i % 2 == 0 else range(len(steps) - 1, -1, -1)
    results: dict[int, T] = {}
    for k in order:
        results[k] = steps[k]()
    return [results[k] for k in range(len(steps))]


# -- targets and rows ------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """``ratio``: modelbox/peer <= value; ``seconds``: modelbox <= value; ``rate``: >= value;
    ``rss``: modelbox's peak RSS <= value MB; ``size``: modelbox <= value MB (of disk);
    ``kb``: modelbox <= value KB (a web page)."""

    kind: Literal["ratio", "seconds", "rate", "rss", "size", "kb"]
    value: float

    def __str__(self) -> str:
        if self.kind == "ratio":
            return f"<= {self.value:.2f}x"
        if self.kind == "seconds":
            return f"<= {self.value:g} s"
        if self.kind == "rss":
            return f"RSS <= {self.value:g} MB"
        if self.kind == "size":
            return f"<= {self.value:g} MB"
        if self.kind == "kb":
            return f"<= {self.value:g} KB"
        return f">= {self.value:g}/s"


@dataclass
class Row:
    """One line of the table. Times in seconds (medians); rates per second."""

    scenario: str
    ours: float | None
    peer: float | None = None
    target: Target | None = None
    ours_rss: float | None = None
    peer_rss: float | None = None
    unit: str = "s"
    note: str = ""

    @classmethod
    def of(cls, scenario: str, ours: Sequence[Sample], peer: Sequence[Sample] | None = None,
           target: Target | None = None, note: str = "") -> Row:
        """Medians of the times, maxima of the peak RSS."""
        return cls(
            scenario,
            statistics.median(s.seconds for s in ours) if ours else None,
            statistics.median(s.seconds for s in peer) if peer else None,
            target,
            max(s.rss_mb for s in ours) if ours else None,
            max(s.rss_mb for s in peer) if peer else None,
            note=note,
        )

    @property
    def ratio(self) -> float | None:
        if self.ours is None or not self.peer or self.unit != "s":
            return None
        return self.ours / self.peer

    def verdict(self, quick: bool) -> str:
        if self.target is None:
            return ""
        if quick:
            return "-"
        if self.ours is None:
            return "n/a"
        if self.target.kind == "ratio":
            return "n/a" if self.ratio is None else _ok(self.ratio <= self.target.value)
        if self.target.kind in ("seconds", "size", "kb"):
            return _ok(self.ours <= self.target.value)
        if self.target.kind == "rss":
            return "n/a" if self.ours_rss is None else _ok(self.ours_rss <= self.target.value)
        return _ok(self.ours >= self.target.value)


def _ok(flag: bool) -> str:
    return "pass" if flag else "FAIL"


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    return f"{value:,.0f} {unit}"


def _rss(row: Row) -> str:
    if row.ours_rss is None and row.peer_rss is None:
        return ""
    ours = f"{row.ours_rss:.0f}" if row.ours_rss is not None else "-"
    return f"{ours} / {row.peer_rss:.0f}" if row.peer_rss is not None else ours


def table(rows: Sequence[Row], quick: bool) -> str:
    """The Markdown table: scenario | modelbox | peer | ratio | target | verdict | RSS."""
    head = ["scenario", "modelbox", "peer", "ratio", "target", "verdict",
            "peak RSS MB (mb / peer)"]
    body = []
    for row in rows:
        ratio = row.ratio
        body.append([
            row.scenario + (f" ({row.note})" if row.note else ""),
            _value(row.ours, row.unit),
            _value(row.peer, row.unit) if row.peer is not None else "-",
            f"{ratio:.2f}" if ratio is not None else "-",
            str(row.target) if row.target else "-",
            row.verdict(quick),
            _rss(row),
        ])
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    right = {1, 2, 3}

    def line(cells: list[str]) -> str:
        padded = (c.rjust(w) if i in right else c.ljust(w)
                  for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), rule, *(line(r) for r in body)])


# -- the shared state of one run -------------------------------------------------------
@dataclass
class Sizes:
    big_mb: int = 1024
    files: int = 2000
    file_kb: int = 64
    gto: tuple[int, int] = (20, 25)
    gto_scale: int = 10
    registry: tuple[int, int] = (1000, 10)
    # scenarios 10-13 (benchkit/scale*.py): the registry of issue 15 (models, versions), the
    # versions per batch of the two bulk rows and the one-publish row, the curve's sizes,
    # the synthetic refs of scenario 12, the shards of scenario 13 (count, models, versions)
    scale: tuple[int, int] = (5000, 20)
    scale_batches: tuple[int, int, int] = (1000, 20000, 100)
    scale_curve: tuple[tuple[int, int], ...] = ((50, 20), (500, 20), (5000, 20))
    scale_refs: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    scale_shards: tuple[int, int, int] = (10, 500, 4)
    scale_rounds: int = 1  # rounds of push / clone / pull at 100k (~10 min each here)


@dataclass
class Bench:
    """What every scenario shares: sizes, repeats, the work folder, S3 and the peers."""

    quick: bool
    repeat: int  # for the expensive transfers
    fast_repeat: int  # for commands that take a second or less
    sizes: Sizes
    work: Path
    stack: contextlib.ExitStack
    peers: Peers | None = None
    peer_problem: str = ""
    rebuild_scale: bool = False  # --rebuild-scale: build the cached scale registries again
    scale_from: Path | None = None  # --scale-from: seed the scale registry from a copy
    shared: dict[str, object] = field(default_factory=dict)
    _server: S3Server | None = None

    @property
    def python(self) -> str:
        return sys.executable

    @property
    def modelbox(self) -> str:
        found = Path(sys.executable).with_name("modelbox")
        return str(found) if found.exists() else (shutil.which("modelbox") or "modelbox")

    def say(self, message: str) -> None:
        """Progress, on stderr so that stdout is only the table."""
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    def env(self, **extra: str) -> dict[str, str]:
        """An environment isolated from the user's: own HOME, fixed Git identity, no AWS or
        modelbox settings (each scenario adds the ones it means)."""
        home = self.work / "home"
        home.mkdir(exist_ok=True)
        drop = ("AWS_", "MODELBOX_", "DVC_", "GIT_", "FSSPEC_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        # An installed package runs from its compiled bytecode; without it every command
        # would compile modelbox again (~0.1 s) and the peers theirs.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update({
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
            "MODELBOX_CACHE_DIR": str(self.work / "mbcache"),
        })
        env.update(extra)
        return env

    def s3(self) -> S3Server:
        """The run's SeaweedFS (started on first use, stopped when the run ends)."""
        if self._server is None:
            if str(ROOT / "tests") not in sys.path:
                sys.path.insert(0, str(ROOT / "tests"))
            from s3server import running_s3_server  # the project's one S3 launcher

            self.say("starting SeaweedFS")
            self._server = self.stack.enter_context(running_s3_server(self.work / "s3"))
            self._server.create_bucket(BUCKET)
        return self._server

    def s3_env(self, **extra: str) -> dict[str, str]:
        return self.env(**self.s3().env(), **extra)

    def fresh(self, name: str) -> Path:
        """An empty folder under the work folder (emptied if it existed)."""
        path = self.work / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path


@contextlib.contextmanager
def work_folder(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="modelbox-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"work folder kept: {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)
