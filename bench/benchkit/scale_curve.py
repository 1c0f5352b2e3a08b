"""Scenario 11: the curve of docs/scale.md, the same measures at 1k, 10k and 100k versions.

Registries of ``Sizes.scale_curve`` (models x versions, 10 namespaces), built once by the
probe and cached (``scale_cache.py``; the largest is scenario 10's). For each: what the
repository holds (commits, files in the work tree, objects, ``.git``), the build's rates
when it was built here, and the reads and ``check`` as fresh processes beside plain git.
No targets: this shows what grows and by how much.
"""

from __future__ import annotations

from benchkit import scale_cache
from benchkit.harness import Bench, Row, Sample, measure, run
from benchkit.scale import disk, label, reads

CURVE_READS = ("resolve team0", "model list vs", "version list team0", "log team0/m0000 vs")


def curve(bench: Bench) -> list[Row]:
    rows: list[Row] = []
    env = bench.env()
    for models, versions in bench.sizes.scale_curve:
        reg, stamp = scale_cache.registry(bench, models, versions)
        size = f"11. [{label(models, versions)}]"
        found = disk(bench, reg)
        commits = int(run(["git", "rev-list", "--count", "HEAD"], env=env, cwd=reg))
        files = run(["git", "ls-files"], env=env, cwd=reg).count("\n")
        rows += [
            Row(f"{size} commits on the registry branch", commits, unit="commits"),
            Row(f"{size} files in the work tree (and the index)", files, unit="files"),
            Row(f"{size} objects (packs + loose)", found["objects"], unit="objects",
                note=f"{found['packs']} packs, {found['loose']:,} loose"),
            Row(f"{size} .git on disk", found["git_dir"] / 1e6, unit="MB"),
        ]
        rates = stamp.get("rates")
        if isinstance(rates, dict):
            rows += [
                Row(f"{size} build, batched (API)", rates["batched"], unit="versions/s",
                    ours_rss=rates.get("peak_rss_mb")),
                Row(f"{size} build, then 100 one publish each (API)", rates["single"],
                    unit="versions/s"),
            ]
        rows += reads(bench, reg, size, "11", only=CURVE_READS, targets=False)
        checked: list[Sample] = [measure([bench.modelbox, "check"], env=env, cwd=reg)]
        rows.append(Row.of(f"{size} check (one round)", checked))
    return rows
