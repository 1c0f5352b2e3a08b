"""Scenario 6: the 1,000 x 10 registry of issue 2, built through the Python API, then the
CLI on it. No peer: the targets are absolute (issue 2).

Creation is one commit per version, published in batches (``client.batch()``), timed inside
the building process; the 100 versions after it are published one call at a time. Every
command is a fresh `modelbox` process, as a user runs it; the rounds interleave the commands.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchkit.harness import PROBES, Bench, Row, Sample, Target, measure

RATE = Target("rate", 100)  # issue 2: >= 100 versions/s
START = Target("seconds", 0.25)  # issue 2: resolve
LISTING = Target("seconds", 1.0)  # issue 2: model list, version list, log MODEL
CHECK = Target("seconds", 5.0)  # bench/registry.py's budget for `check` (issue 2 sets none)


def registry(bench: Bench) -> tuple[Path, Sample]:
    """The registry (built once per run and shared with scenario 7) and its build sample."""
    if "registry" not in bench.shared:
        models, versions = bench.sizes.registry
        path = bench.fresh("big-registry") / "reg"
        bench.say(f"6: building {models} models x {versions} versions through the API")
        sample = measure([bench.python, str(PROBES), "build-registry", str(path), str(models),
                          str(versions)], env=bench.env(), cwd=bench.work, capture=True)
        bench.shared["registry"] = (path, sample)
    found = bench.shared["registry"]
    assert isinstance(found, tuple)
    return found


def big_registry(bench: Bench) -> list[Row]:
    reg, build = registry(bench)
    models, versions = bench.sizes.registry
    rates = json.loads(build.output.strip().splitlines()[-1])
    size = f"{models}x{versions}"
    env = bench.env()
    model = "team0/m0000"
    commands = {
        "resolve": ([bench.modelbox, "resolve", f"{model}:production"], START),
        "model list": ([bench.modelbox, "model", "list"], LISTING),
        "version list": ([bench.modelbox, "version", "list", model], LISTING),
        "log": ([bench.modelbox, "log", model], LISTING),
        "log cold": ([bench.modelbox, "log", model], LISTING),
        "check": ([bench.modelbox, "check"], CHECK),
    }
    got: dict[str, list[Sample]] = {k: [] for k in commands}
    commit_cache = reg / ".git" / "modelbox" / "commits.jsonl"
    for i in range(bench.fast_repeat):
        bench.say(f"6: round {i + 1}/{bench.fast_repeat}")
        for key, (argv, _) in commands.items():
            if key == "log cold":
                commit_cache.unlink(missing_ok=True)
            got[key].append(measure(argv, env=env, cwd=reg))
    titles = {
        "resolve": f"resolve {model}:production",
        "model list": "model list",
        "version list": f"version list {model}",
        "log": f"log {model} (commit cache warm)",
        "log cold": f"log {model} (commit cache deleted)",
        "check": "check",
    }
    rows = [
        Row(f"6. [{size}] create {models * versions:,} versions (API, batched)",
            rates["batched"], target=RATE, ours_rss=build.rss_mb, unit="versions/s"),
        Row(f"6. [{size}] create 100 more, one publish each (API)", rates["single"],
            unit="versions/s"),
    ]
    rows += [Row.of(f"6. [{size}] {titles[k]}", got[k], target=t)
             for k, (_, t) in commands.items()]
    return rows
