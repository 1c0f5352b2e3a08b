"""Scenario 15 (``web``): issue 18's speed targets, measured in headless Chromium.

On the cached 100,000-version registry (:func:`scale_cache.registry`, read-only here):

- **start-up**: ``modelbox ui`` started, then the index (or a model page) opened in
  Chromium, timed from the server's fork to the page's ``load`` event, which comes after
  ``domInteractive`` (so this is an upper bound of "interactive"); a fresh server per round;
- **pages after start-up**: the same server, page after page (index, model, version), each
  timed by the browser's Navigation Timing (``loadEventEnd`` of the navigation entry);
- **chart**: a version page-set of 10 series x 10,000 points (a small registry of its own),
  drawn: from navigation start until the page's charts are drawn (``loadEventEnd``, then
  one animation frame, which comes after the chart's script has run);
- **site build**: ``modelbox site build OUT`` of the whole registry, then, in a copy, an
  incremental rebuild after one tag move; the largest page it wrote (chart data aside).

Chromium is Debian's, driven through Debian's chromedriver by Selenium
(``tests/web/browser/harness.py``, the tests' own launcher). Without it the scenario's rows
say so and have no numbers (a full run then fails, as with a missing peer).
"""

from __future__ import annotations

import importlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchkit import scale_cache
from benchkit.harness import BENCH, ROOT, Bench, Row, Sample, StepError, Target, measure, run

SERIES, POINTS = 10, 10_000
QUICK_POINTS = 1_000
PAGE_KB = 500.0
TARGETS = {
    "start-index": Target("seconds", 1.0),
    "start-model": Target("seconds", 1.0),
    "page": Target("seconds", 0.3),
    "chart": Target("seconds", 0.5),
    "site": Target("seconds", 120.0),
    "site-incremental": Target("seconds", 2.0),
}


def _harness() -> Any:
    tests = str(ROOT / "tests" / "web")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    # The browser tests' launcher (tests/web/browser/harness.py): one way to start Chromium.
    return importlib.import_module("browser.harness")


def _absent(bench: Bench, reason: str) -> list[Row]:
    bench.say(f"web: no numbers: {reason}")
    return [Row(f"web: {name}", None, target=target, note=reason)
            for name, target in TARGETS.items()]


class _Browser:
    """One Chromium for the scenario and helpers to time what it loads."""

    def __init__(self, bench: Bench) -> None:
        self.harness = _harness()
        self.driver = self.harness.start_chromium(bench.fresh("web-chromium") / "profile")
        bench.stack.callback(self.driver.quit)

    def open(self, url: str) -> float:
        """Open ``url``; the browser's own seconds from navigation start to ``load`` end."""
        self.driver.get(url)
        page = self.driver.execute_script(
            "const n = performance.getEntriesByType('navigation')[0];"
            "return n ? n.loadEventEnd - n.startTime : -1;")
        if page < 0:
            raise StepError(f"{url}: no navigation timing")
        return float(page) / 1000

    def drawn(self, url: str) -> float:
        """Open ``url`` and wait one animation frame after ``load``: the seconds from
        navigation start until then (the charts' script has run and painted)."""
        self.driver.get(url)
        seconds = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "requestAnimationFrame(() => requestAnimationFrame(() => done("
            "  performance.now() - performance.getEntriesByType('navigation')[0].startTime)));")
        return float(seconds) / 1000

    def links(self, contains: str) -> list[str]:
        hrefs: list[str] = self.driver.execute_script(
            "return [...document.querySelectorAll('a[href]')].map(a => a.href)"
            ".filter(h => h.includes(arguments[0]));", contains)
        return hrefs

    def errors(self) -> list[str]:
        return [str(e.get("message")) for e in self.driver.get_log("browser")
                if e.get("level") == "SEVERE"]


def _serve(bench: Bench, path: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([bench.modelbox, "ui", "--port", str(port), "--no-open"],
                            cwd=path, env=bench.env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _cold_open(bench: Bench, browser: _Browser, path: Path, page: str) -> float:
    """A fresh ``modelbox ui``; seconds from its fork to ``page`` loaded in Chromium."""
    harness = browser.harness
    port = harness.free_port()
    started = time.perf_counter()
    proc = _serve(bench, path, port)
    try:
        while not harness.answers(port):
            if proc.poll() is not None:
                raise StepError(f"modelbox ui exited {proc.returncode} before serving")
            if time.perf_counter() - started > 60:
                raise StepError("modelbox ui did not listen in 60 s")
            time.sleep(0.005)
        browser.driver.get(f"http://127.0.0.1:{port}/{page}")
        return time.perf_counter() - started
    finally:
        browser.driver.get("about:blank")  # off the page before its server goes away
        _stop(proc)


def _listening(bench: Bench, browser: _Browser, path: Path) -> str:
    """A ``modelbox ui`` over ``path`` for the rest of the run; its root URL."""
    port = browser.harness.free_port()
    proc = _serve(bench, path, port)
    bench.stack.callback(_stop, proc)
    deadline = time.perf_counter() + 60
    while not browser.harness.answers(port):
        if proc.poll() is not None or time.perf_counter() > deadline:
            raise StepError(f"modelbox ui over {path} did not listen")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}/"


def _model_page(model: str) -> str:
    return f"m/{model}/_model.html"  # the pages' URLs: docs/web.md


def _version_page(model: str, version: str) -> str:
    return f"m/{model}/_v/{version}.html"


def web(bench: Bench) -> list[Row]:
    harness = _harness()
    reason = harness.missing() or harness.lacks("ui") or harness.lacks("site", "build")
    if reason:
        return _absent(bench, reason)
    rows: list[Row] = []
    path, _ = scale_cache.registry(bench, *bench.sizes.scale)
    browser = _Browser(bench)
    first = sorted(p.name for p in (path / "models").iterdir() if p.is_dir())[0]
    models = [f"{first}/{p.name}" for p in sorted((path / "models" / first).iterdir())
              if p.is_dir()][: bench.fast_repeat + 1]
    size = f"{bench.sizes.scale[0] * bench.sizes.scale[1]:,} versions"
    for label, page in (("start-index", ""), ("start-model", _model_page(models[0]))):
        bench.say(f"web: {label}")
        samples = [_cold_open(bench, browser, path, page) for _ in range(bench.fast_repeat)]
        rows.append(Row(f"web: `modelbox ui` start -> {label[6:]} page loaded ({size})",
                        statistics.median(samples), target=TARGETS[label]))
    errors = browser.errors()  # of the cold starts: kept, reported with the rest
    root = _listening(bench, browser, path)
    browser.open(root)  # the server's first page: "after start-up" begins here
    # Pages a reader has not opened yet: a model page and a version page of each other model.
    rounds = {"index": [""] * bench.fast_repeat,
              "model": [_model_page(m) for m in models[1:]],
              "version": [_version_page(m, f"v{i}") for i, m in enumerate(models[1:])]}
    for kind, paths in rounds.items():
        times = [browser.open(root + page) for page in paths]
        rows.append(Row(f"web: {kind} page after start-up (browser; {len(paths)} "
                        f"{'times' if kind == 'index' else 'different pages'}, {size})",
                        statistics.median(times), target=TARGETS["page"]))
    rows.append(_chart(bench, browser))
    rows += _site(bench, path, size)
    errors = [e for e in errors + browser.errors() if "/favicon.ico" not in e]
    if errors:
        bench.say(f"web: {len(errors)} console errors in Chromium: " + "; ".join(errors[:5]))
        for row in rows:
            row.note = f"{len(errors)} console errors"
    return rows


def _chart(bench: Bench, browser: _Browser) -> Row:
    points = QUICK_POINTS if bench.quick else POINTS
    folder = bench.fresh("web-chart") / "registry"
    bench.say(f"web: a registry of {SERIES} series x {points:,} points")
    run([bench.python, str(Path(__file__)), "chart-registry", str(folder), str(points)],
        env=bench.env(PYTHONPATH=str(BENCH)), cwd=bench.work)
    url = _listening(bench, browser, folder) + "m/bench/chart/_metrics.html"
    browser.drawn(url)  # the server renders it once
    drawn = browser.driver.execute_script(
        "return document.querySelectorAll('#chart svg polyline').length")
    if drawn != SERIES:
        raise StepError(f"the chart drew {drawn} series, not {SERIES}")
    times = [browser.drawn(url) for _ in range(bench.fast_repeat)]
    return Row(f"web: chart of {SERIES} series x {points:,} points drawn (browser)",
               statistics.median(times), target=TARGETS["chart"])


def _cpu_measured(bench: Bench, argv: list[str], cwd: Path) -> tuple[Sample, float]:
    """:func:`measure`, and the CPU seconds (user + system) the command used: on a shared,
    loaded machine its wall time says more about the neighbours than about it. Read from
    this process's reaped children, which between the two reads are the launcher and the
    command alone (the servers and the browser are still running)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    sample = measure(argv, env=bench.env(), cwd=cwd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return sample, cpu


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}"


def _site(bench: Bench, path: Path, size: str) -> list[Row]:
    """Both builds on a copy of the cached registry (a build writes caches under
    ``.git/modelbox``; the cache stays as built). The CPU seconds are the command's and
    its worker processes' (reaped by it, so counted in its own usage)."""
    out = bench.work / "web-site"
    shutil.rmtree(out, ignore_errors=True)
    copy = scale_cache.copy(bench, path.resolve(), "web-site-registry")  # not the symlink
    bench.say(f"web: site build ({size}, {_load()})")
    before = _load()
    full, cpu = _cpu_measured(bench, [bench.modelbox, "site", "build", str(out)], copy)
    pages = sum(1 for _ in out.rglob("*.html"))
    largest = max(out.rglob("*.html"), key=lambda p: p.stat().st_size)
    kb = largest.stat().st_size / 1024
    rows = [Row.of(f"web: `site build` of the whole registry ({size}; {pages:,} pages)",
                   [full], target=TARGETS["site"],
                   note=f"CPU {cpu:.0f} s; {before} -> {_load()}"),
            Row(f"web: largest page written ({largest.relative_to(out)})", kb,
                target=Target("kb", PAGE_KB), unit="KB")]
    run([bench.modelbox, "tag", _tag_move(copy), "bench-web"], env=bench.env(), cwd=copy)
    bench.say("web: site build after one tag move")
    again, cpu = _cpu_measured(bench, [bench.modelbox, "site", "build", str(out)], copy)
    rows.append(Row.of("web: incremental `site build` after one tag move", [again],
                       target=TARGETS["site-incremental"],
                       note=f"CPU {cpu:.1f} s; {_load()}"))
    return rows


def _tag_move(registry: Path) -> str:
    first = sorted(p.name for p in (registry / "models").iterdir() if p.is_dir())[0]
    model = sorted(p.name for p in (registry / "models" / first).iterdir())[0]
    return f"{first}/{model}@v1"


def _chart_registry(folder: Path, points: int) -> None:
    """A registry with one model and SERIES versions, each one ``loss`` series of ``points``
    points (one commit per version)."""
    from modelbox import ModelBoxClient
    from modelbox.names import Reference, parse_model
    from modelbox.registry import metric_points

    with ModelBoxClient(folder, create=True) as client:
        model = client.new_model("bench/chart", owner="bench", task="chart")
        for number in range(SERIES):
            version = model.new_model_version()
            ref = Reference(parse_model("bench/chart"), version=version.version)
            batch = []
            for step in range(points):
                batch += metric_points({"loss": 1.0 / (1 + step * (number + 1) / 100)},
                                       step=step, wallclock=1.78e9 + step * (number + 1))
            client.registry.append_metrics(ref, batch)


if __name__ == "__main__":
    if sys.argv[1:2] == ["chart-registry"]:
        _chart_registry(Path(sys.argv[2]), int(sys.argv[3]))
