"""Scenarios 1-3: artifacts to and from S3, against plain s3fs and DVC on the same bucket.

Every step is its own process, as a user runs it. Before each timed modelbox `artifact add`
or `get` the modelbox cache (objects and hash cache) is emptied and the store is a fresh
prefix, so the first add hashes and uploads everything and a get crosses the wire. DVC gets
the same: a fresh repository and remote prefix per round for `dvc add` + `dvc push`, and a
fresh `git clone` of it for `dvc pull`. DVC keeps its defaults (jobs, cache link type...);
only analytics and update checks are off.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchkit import data
from benchkit.harness import (
    BUCKET,
    PROBES,
    Bench,
    Row,
    Sample,
    Target,
    alternate,
    inner,
    measure,
    run,
)
from benchkit.peers import dvc_env

S3FS_SLACK = Target("ratio", 1.3)  # issue 3: add/get of one large file vs s3fs put/get
NO_SLOWER = Target("ratio", 1.0)  # issue 3: the folder vs the plain s3fs list
DVC_3X = Target("ratio", 1 / 3)  # issue 3: the folder >= 3x faster than dvc push / pull
READD = Target("seconds", 0.1)  # issue 3: re-adding an unchanged large file


def _label(megabytes: int) -> str:
    return f"{megabytes // 1024} GiB" if megabytes % 1024 == 0 else f"{megabytes} MiB"


class Dvc:
    """A fresh DVC repository (in Git) holding copies of ``sources``, remote on the bucket."""

    def __init__(self, bench: Bench, name: str, sources: list[Path]) -> None:
        assert bench.peers is not None
        self.bench, self.name, self.dvc = bench, name, bench.peers.exe("dvc")
        self.env = dvc_env(bench.s3_env(), bench.work)
        self.root = bench.fresh(name)
        self.targets = [s.name for s in sources]
        self._run(["git", "init", "-q"])
        self._run([self.dvc, "init", "-q"])
        self._run([self.dvc, "remote", "add", "-d", "store",
                   f"s3://{BUCKET}/dvc/{name}-{time.time_ns()}"])
        self._run([self.dvc, "remote", "modify", "store", "endpointurl", bench.s3().endpoint])
        for source in sources:  # copies keep the old mtime, as the originals
            if source.is_dir():
                shutil.copytree(source, self.root / source.name)
            else:
                shutil.copy2(source, self.root / source.name)

    def _run(self, argv: list[str], cwd: Path | None = None) -> None:
        run(argv, env=self.env, cwd=cwd or self.root)

    def add(self) -> Sample:
        return measure([self.dvc, "add", "-q", *self.targets], env=self.env, cwd=self.root)

    def push(self) -> Sample:
        return measure([self.dvc, "push", "-q"], env=self.env, cwd=self.root)

    def add_push(self) -> list[Sample]:
        """`dvc add` then `dvc push`, then a commit of the .dvc files (not timed)."""
        samples = [self.add(), self.push()]
        self._run(["git", "add", "-A"])
        self._run(["git", "commit", "-q", "-m", "data"])
        return samples

    def pull_in_clone(self) -> Sample:
        clone = self.bench.work / f"{self.name}-clone"
        shutil.rmtree(clone, ignore_errors=True)
        self._run(["git", "clone", "-q", str(self.root), str(clone)], cwd=self.bench.work)
        try:
            return measure([self.dvc, "pull", "-q"], env=self.env, cwd=clone)
        finally:
            shutil.rmtree(clone, ignore_errors=True)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _both(samples: list[Sample]) -> Sample:
    """Two steps one after the other: the sum of their times, the larger peak RSS."""
    return Sample(sum(s.seconds for s in samples), max(s.rss_mb for s in samples))


def _registry(bench: Bench) -> Path:
    reg = bench.work / "reg-transfers"
    if not reg.exists():
        env = bench.env()
        run([bench.modelbox, "init", str(reg)], env=env, cwd=bench.work)
        run([bench.modelbox, "model", "create", "b/m"], env=env, cwd=reg)
    return reg


class _Modelbox:
    """`modelbox artifact add` / `get` on a fresh S3 prefix with an empty cache."""

    def __init__(self, bench: Bench, version: str) -> None:
        self.bench, self.version = bench, version
        self.reg = _registry(bench)
        self.env = bench.s3_env(MODELBOX_STORE=f"s3://{BUCKET}/mb/{version}-{time.time_ns()}")
        run([bench.modelbox, "version", "create", "b/m", version], env=self.env, cwd=self.reg)

    def _cold(self) -> None:
        shutil.rmtree(self.env["MODELBOX_CACHE_DIR"], ignore_errors=True)

    def add(self, source: Path) -> Sample:
        self._cold()
        return measure([self.bench.modelbox, "artifact", "add", f"b/m@{self.version}",
                        str(source), "-q"], env=self.env, cwd=self.reg)

    def get(self, out: Path) -> Sample:
        self._cold()
        return measure([self.bench.modelbox, "get", f"b/m@{self.version}", "-o", str(out),
                        "-q"], env=self.env, cwd=self.reg)

    def release(self) -> None:
        """Move the protected tag `production` here: it releases the version (not timed)."""
        run([self.bench.modelbox, "tag", f"b/m@{self.version}", "production"], env=self.env,
            cwd=self.reg)

    def get_protected(self, out: Path) -> Sample:
        """`get b/m:production`: the released digest is checked before anything is placed."""
        self._cold()
        return measure([self.bench.modelbox, "get", "b/m:production", "-o", str(out), "-q"],
                       env=self.env, cwd=self.reg)


def _into(samples: list[Sample], step: Callable[..., Sample], *args: Any) -> Callable[[], None]:
    """A step that appends its sample to ``samples`` when run."""
    return lambda: samples.append(step(*args))


def _into_each(targets: list[list[Sample]], step: Callable[[], list[Sample]],
               ) -> Callable[[], None]:
    """A step of several measured parts, each appended to its own list."""
    def go() -> None:
        for samples, sample in zip(targets, step(), strict=True):
            samples.append(sample)

    return go


def _transfer_rounds(bench: Bench, tag: str, source: Path,
                     s3_put: Callable[[int], Sample], s3_get: Callable[[int, Path], Sample],
                     *, protected: bool = False) -> dict[str, list[Sample]]:
    """Rounds of put/add/push then get/pull, each group in alternating order; with
    ``protected``, also `get` through the protected tag `production` (a released version)."""
    got: dict[str, list[Sample]] = {k: [] for k in
                                    ("s3_put", "mb_add", "dvc_add", "dvc_push", "s3_get",
                                     "mb_get", "dvc_pull", "mb_get_tag")}
    for i in range(bench.repeat):
        bench.say(f"{tag}: round {i + 1}/{bench.repeat}")
        mb = _Modelbox(bench, f"{tag}{i}")
        dvc = Dvc(bench, f"dvc-{tag}{i}", [source]) if bench.peers else None
        steps = [_into(got["s3_put"], s3_put, i), _into(got["mb_add"], mb.add, source)]
        if dvc:
            steps.append(_into_each([got["dvc_add"], got["dvc_push"]], dvc.add_push))
        alternate(i, *steps)
        out = bench.fresh(f"out-{tag}{i}")
        steps = [_into(got["s3_get"], s3_get, i, out / "plain"),
                 _into(got["mb_get"], mb.get, out / "modelbox")]
        if protected:
            mb.release()
            steps.append(_into(got["mb_get_tag"], mb.get_protected, out / "production"))
        if dvc:
            steps.append(_into(got["dvc_pull"], dvc.pull_in_clone))
        alternate(i, *steps)
        shutil.rmtree(out, ignore_errors=True)
        if dvc:
            dvc.remove()
    return got


def _measure_in(argv: list[str], env: dict[str, str], cwd: Path) -> Sample:
    return measure(argv, env=env, cwd=cwd)


def _probe_in(argv: list[str], env: dict[str, str], cwd: Path) -> Sample:
    return inner(measure(argv, env=env, cwd=cwd, capture=True))


def _peer_note(bench: Bench) -> str:
    return "" if bench.peers else "peer unavailable"


def big_file(bench: Bench) -> list[Row]:
    """1: one large file, `artifact add` / `get` vs s3fs put_file / get_file and DVC."""
    source = data.big_file(bench)
    size = _label(bench.sizes.big_mb)
    env = bench.s3_env()

    def s3_put(i: int) -> Sample:
        key = f"{BUCKET}/plain/big{i}-{time.time_ns()}"
        keys.append(key)
        return measure([bench.python, str(PROBES), "s3-put-file", str(source), key], env=env,
                       cwd=bench.work)

    def s3_get(i: int, out: Path) -> Sample:
        out.mkdir(parents=True)
        return measure([bench.python, str(PROBES), "s3-get-file", keys[i],
                        str(out / source.name)], env=env, cwd=bench.work)

    keys: list[str] = []
    got = _transfer_rounds(bench, "big", source, s3_put, s3_get)
    dvc_both = [_both(list(p)) for p in zip(got["dvc_add"], got["dvc_push"], strict=True)]
    note = _peer_note(bench)
    return [
        Row.of(f"1. add {size} file vs s3fs put_file", got["mb_add"], got["s3_put"],
               S3FS_SLACK),
        Row.of(f"1. add {size} file vs dvc add + dvc push", got["mb_add"], dvc_both, note=note),
        Row.of(f"1. get {size} file vs s3fs get_file", got["mb_get"], got["s3_get"], S3FS_SLACK),
        Row.of(f"1. get {size} file vs dvc pull (fresh clone)", got["mb_get"], got["dvc_pull"],
               note=note),
    ]


def folder(bench: Bench) -> list[Row]:
    """2: a folder of small files as one directory artifact, vs the s3fs list and DVC."""
    source = data.folder(bench)
    files = sorted(source.iterdir())
    env = bench.s3_env()
    what = f"{bench.sizes.files:,} x {bench.sizes.file_kb} KiB folder"

    def plan(name: str, pairs: list[list[str]]) -> str:
        path = bench.work / f"{name}.json"
        path.write_text(json.dumps(pairs))
        return str(path)

    def s3_put(i: int) -> Sample:
        prefix = f"{BUCKET}/plain/dir{i}-{time.time_ns()}"
        prefixes.append(prefix)
        pairs = [[str(f), f"{prefix}/{f.name}"] for f in files]
        return measure([bench.python, str(PROBES), "s3-put-list", plan("put", pairs)], env=env,
                       cwd=bench.work)

    def s3_get(i: int, out: Path) -> Sample:
        out.mkdir(parents=True)
        pairs = [[f"{prefixes[i]}/{f.name}", str(out / f.name)] for f in files]
        return measure([bench.python, str(PROBES), "s3-get-list", plan("get", pairs)], env=env,
                       cwd=bench.work)

    prefixes: list[str] = []
    got = _transfer_rounds(bench, "dir", source, s3_put, s3_get, protected=True)
    dvc_both = [_both(list(p)) for p in zip(got["dvc_add"], got["dvc_push"], strict=True)]
    note = _peer_note(bench)
    return [
        Row.of(f"2. add {what} vs s3fs put (list)", got["mb_add"], got["s3_put"], NO_SLOWER),
        Row.of(f"2. add {what} vs dvc push", got["mb_add"], got["dvc_push"], DVC_3X, note=note),
        Row.of(f"2. add {what} vs dvc add + dvc push", got["mb_add"], dvc_both, note=note),
        Row.of(f"2. get {what} vs s3fs get (list)", got["mb_get"], got["s3_get"], NO_SLOWER),
        Row.of(f"2. get {what} vs dvc pull (fresh clone)", got["mb_get"], got["dvc_pull"],
               DVC_3X, note=note),
        Row.of(f"2. get {what} through a protected tag vs dvc pull (fresh clone)",
               got["mb_get_tag"], got["dvc_pull"], DVC_3X, note=note),
    ]


def noop(bench: Bench) -> list[Row]:
    """3: adding unchanged data again (hash cache hit, store already has it) vs `dvc push`."""
    big, shards = data.big_file(bench), data.folder(bench)
    size = _label(bench.sizes.big_mb)
    what = f"{bench.sizes.files:,} x {bench.sizes.file_kb} KiB folder"
    reg = _registry(bench)
    # Its own cache folder: the other scenarios empty theirs before every step.
    env = bench.s3_env(MODELBOX_STORE=f"s3://{BUCKET}/mb/noop-{time.time_ns()}",
                       MODELBOX_CACHE_DIR=str(bench.work / "mbcache-noop"))
    bench.say("3: first add and push (not timed)")
    run([bench.modelbox, "version", "create", "b/m", "noop"], env=env, cwd=reg)
    for source in (big, shards):
        run([bench.modelbox, "artifact", "add", "b/m@noop", str(source), "-q"], env=env, cwd=reg)
    dvcs: dict[str, Dvc] = {}
    if bench.peers:
        for key, source in (("file", big), ("dir", shards)):
            dvcs[key] = Dvc(bench, f"dvc-noop-{key}", [source])
            dvcs[key].add_push()

    readd = [bench.modelbox, "artifact", "add", "b/m@noop"]
    api_call = [bench.python, str(PROBES), "readd", "b/m@noop", str(big)]
    got: dict[str, list[Sample]] = {k: [] for k in
                                    ("api", "mb_file", "mb_dir", "dvc_file", "dvc_dir")}
    rounds = bench.repeat if bench.quick else bench.fast_repeat
    for i in range(rounds):
        bench.say(f"3: round {i + 1}/{rounds}")
        steps = [
            _into(got["mb_file"], _measure_in, [*readd, str(big), "-q"], env, reg),
            _into(got["mb_dir"], _measure_in, [*readd, str(shards), "-q"], env, reg),
            _into(got["api"], _probe_in, api_call, env, reg),
        ]
        steps += [_into(got[f"dvc_{key}"], dvc.push) for key, dvc in dvcs.items()]
        alternate(i, *steps)
    for dvc in dvcs.values():
        dvc.remove()
    note = _peer_note(bench)
    return [
        Row.of(f"3. re-add unchanged {size} file, API call (in-process)", got["api"],
               target=READD),
        Row.of(f"3. re-add unchanged {size} file (CLI) vs dvc push no-op", got["mb_file"],
               got["dvc_file"], note=note),
        Row.of(f"3. re-add unchanged {what} (CLI) vs dvc push no-op", got["mb_dir"],
               got["dvc_dir"], note=note),
    ]
