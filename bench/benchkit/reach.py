"""Scenario 16 (``reach``): issue 16's URL-read targets, side by side with Git and the peers.

The cached 100,000-version registry (:func:`scale_cache.registry`, read-only here) is
served by the tests' ``git daemon`` on loopback (the helper scenario 10 uses for push /
clone), with ``uploadpack.allowFilter`` on so that ``git clone --filter=blob:none`` is
really filtered. Every command is a fresh process; each cold round gets its own
``MODELBOX_CACHE_DIR`` (an empty mirror cache, ``<cache>/registries/``):

* first ``modelbox --repo URL resolve M:production`` (cold) against ``git clone
  --filter=blob:none --depth 1 URL`` (<= 2x). The registry holds no artifacts, so the
  artifact transfer of issue 16's target is zero;
* later reads on the last cold round's mirror, within the TTL (``MODELBOX_URL_TTL`` set to
  an hour so no repeat refetches): ``resolve`` (<= 0.3 s), ``get M:production -o DIR``
  (<= 0.5 s; it places 0 files, there are none) and ``artifact list``. Not ``version
  show``: it needs the version's last-changed time, so its first run through a URL fetches
  the whole history (minutes at 100k, docs/collaboration.md), which is not a later read;
* the peers (:mod:`benchkit.reach_peers`), each on a registry it can read: ``gto show
  --repo URL M#production`` (one run, timed out after 15 min) against a cold ``modelbox
  --repo URL resolve M:production`` on a copy of the registry with GTO tags (SemVer
  versions added, ``config git-tags on`` + ``refs sync`` timed: a row of its own); and
  ``dvc get URL model.bin`` against a cold ``modelbox --repo URL get b/m:production`` of
  the same file (scenario 1's), each in its own repository on the run's bucket.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from benchkit import peers, reach_peers, scale_cache
from benchkit.harness import Bench, Row, Sample, Target, alternate, measure
from benchkit.scale import MODEL, label
from benchkit.sharing import _step, git_daemon

FIRST = Target("ratio", 2.0)  # first read <= 2x git clone --filter=blob:none --depth 1
WARM_RESOLVE = Target("seconds", 0.3)
LATER = Target("seconds", 0.5)  # later get (+ transfer, zero here)
AHEAD = Target("ratio", 1.0)  # ahead of gto show --repo / dvc get
GTO_TIMEOUT = 900.0
# Models given a SemVer version (and GTO tags) on the GTO copy: each such version costs
# one `git log` of the whole history when its registration tag is first made (~1 s at
# 100k commits), so 5,000 would take over an hour; GTO's cost is its full clone.
GTO_MODELS = 100
TTL = "3600"


@contextlib.contextmanager
def _served(root: Path) -> Iterator[str]:
    """``git daemon`` over ``root`` whose upload-pack honours ``--filter``: the setting
    goes through the environment the daemon (and so each upload-pack) inherits; the
    registry's own config is left alone."""
    saved = os.environ.get("GIT_CONFIG_PARAMETERS")
    os.environ["GIT_CONFIG_PARAMETERS"] = "'uploadpack.allowfilter'='true'"
    try:
        with git_daemon(root) as base:
            _restore(saved)
            yield base
    finally:
        _restore(saved)


def _restore(saved: str | None) -> None:
    if saved is None:
        os.environ.pop("GIT_CONFIG_PARAMETERS", None)
    else:
        os.environ["GIT_CONFIG_PARAMETERS"] = saved


def reach(bench: Bench) -> list[Row]:
    models, versions = bench.sizes.scale
    reg, _ = scale_cache.registry(bench, models, versions)
    size = f"16. [{label(models, versions)}]"
    mb = bench.modelbox
    with _served(reg.resolve().parent) as base:
        url = f"{base}/{reg.name}"
        cold: list[Sample] = []
        clone: list[Sample] = []
        cache = bench.work
        for i in range(bench.repeat):
            bench.say(f"16: cold read vs git clone, round {i + 1}/{bench.repeat}")
            cache = bench.fresh(f"reach-cache{i}")
            where = bench.fresh(f"reach-clone{i}")
            env = bench.env(MODELBOX_CACHE_DIR=str(cache))
            alternate(i, _step(cold, [mb, "--repo", url, "resolve", f"{MODEL}:production"],
                               env, where),
                      _step(clone, ["git", "clone", "-q", "--filter=blob:none", "--depth", "1",
                                    url, str(where / "git")], env, where))
            shutil.rmtree(where, ignore_errors=True)  # a checkout of 100k versions' files
        warm_env = bench.env(MODELBOX_CACHE_DIR=str(cache), MODELBOX_URL_TTL=TTL)
        later: dict[str, list[Sample]] = {"resolve": [], "get": [], "artifacts": []}
        for i in range(bench.fast_repeat):
            bench.say(f"16: later reads, round {i + 1}/{bench.fast_repeat}")
            out = bench.fresh(f"reach-get{i}")
            argvs = {
                "resolve": [mb, "--repo", url, "resolve", f"{MODEL}:production"],
                "get": [mb, "--repo", url, "get", f"{MODEL}:production", "-o",
                        str(out / "model")],
                "artifacts": [mb, "--repo", url, "artifact", "list", f"{MODEL}:production"],
            }
            for key, argv in argvs.items():
                later[key].append(measure(argv, env=warm_env, cwd=out))
        rows = [
            Row.of(f"{size} first resolve {MODEL}:production, cold cache (git://) vs git "
                   "clone --filter=blob:none --depth 1", cold, clone, FIRST,
                   note="no artifacts: transfer 0"),
            Row.of(f"{size} later resolve, warm mirror within TTL", later["resolve"],
                   target=WARM_RESOLVE),
            Row.of(f"{size} later get {MODEL}:production -o DIR, warm", later["get"],
                   target=LATER, note="0 files placed: no artifacts"),
            Row.of(f"{size} later artifact list {MODEL}:production, warm",
                   later["artifacts"]),
        ]
        rows += _peers(bench, url, size, cold)
    return rows


def _peers(bench: Bench, url: str, size: str, cold: list[Sample]) -> list[Row]:
    del url, cold  # each peer gets a repository it can read (module docstring)
    models, _ = bench.sizes.scale
    titles = {
        "sync": f"{size} config git-tags on + refs sync, {min(models, GTO_MODELS)} models "
                "with v1.0.0",
        "gto": f"{size} cold resolve vs gto show --repo URL {MODEL}#production (GTO copy)",
        "dvc": f"16. [{bench.sizes.big_mb} MiB] cold get M:production vs dvc get URL FILE",
    }
    if bench.peers is None:
        reason = bench.peer_problem or "no peers"
        return [Row(title, None, target=None if key == "sync" else AHEAD, note=reason)
                for key, title in titles.items()]
    reg, _ = scale_cache.registry(bench, *bench.sizes.scale)
    copy, on, sync, made = reach_peers.gto_copy(bench, reg, min(models, GTO_MODELS))
    rows = [Row.of(titles["sync"], [sync],
                   note=f"{made:,} tags; config git-tags on {on.seconds:.2f} s")]
    where = bench.fresh("reach-peers")
    env = peers.dvc_env(bench.env(MODELBOX_CACHE_DIR=str(where / "mbcache")), where)
    with _served(copy.parent) as base:
        gurl = f"{base}/{copy.name}"
        bench.say("16: cold resolve on the GTO copy")
        ours = [measure([bench.modelbox, "--repo", gurl, "resolve", f"{MODEL}:production"],
                        env=env, cwd=where, capture=True)]
        bench.say(f"16: gto show --repo URL (timeout {GTO_TIMEOUT:.0f} s)")
        seconds, problem, said = reach_peers.timed(
            [bench.peers.exe("gto"), "show", "--repo", gurl, f"{MODEL}#production",
             "--version"], env, where, GTO_TIMEOUT)
        if problem is None and said != ours[0].output.strip():
            problem = f"gto said {said[:20]!r}, modelbox {ours[0].output.strip()!r}"
        peer = [Sample(seconds, 0.0)] if problem is None else []
        row = Row.of(titles["gto"], ours, peer, AHEAD, note=problem or "1 run each")
        row.peer_rss = None
        rows.append(row)
    shutil.rmtree(copy.parent, ignore_errors=True)
    served = bench.fresh("reach-served")
    source, store = reach_peers.artifact_repos(bench, served)
    with _served(served) as base:
        mine, theirs = reach_peers.artifact_rounds(bench, base, source, store)
    rows.append(Row.of(titles["dvc"], mine, theirs, AHEAD,
                       note="same file and S3 bucket; both cold"))
    return rows
