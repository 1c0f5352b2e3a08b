"""``modelbox site build OUT``: every page and its ``.json`` twin as static files,
rewritten only when what the page was built from changed.

``OUT/.modelbox-site.json`` records, for each page, a key: a hash of the Git objects the
page was built from (a model's folder tree, a version's folder tree and the tags and
collection links naming it, the experiment a lineage reaches, the audit events on a log
page) and of the code that renders it. A build computes the keys from trees it can read
without parsing (the listing cache already holds the models' tree shas), and builds only
pages whose key differs; a model whose folder tree and dependencies are unchanged is not
even opened. Pages of deleted models are removed. Every file is written whole (temp file
+ rename), so a reader of OUT (a web server) never sees half a page.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

from modelbox import __version__, layout
from modelbox.errors import InvalidValueError, ModelboxError
from modelbox.names import check_branch, parse_model
from modelbox.web import pages
from modelbox.web.render import render

__all__ = ["BuildReport", "build", "code_key", "static_files", "workers", "write_page"]

MANIFEST = ".modelbox-site.json"
KIND = "modelbox-site"
FORMAT = 1


def static_files() -> dict[str, bytes]:
    """The stylesheet and script every page links (``static/NAME``)."""
    folder = resources.files("modelbox.web") / "static"
    return {f"static/{f.name}": f.read_bytes() for f in folder.iterdir()
            if f.name.endswith((".css", ".js"))}


def code_key() -> str:
    """What renders the pages: modelbox's version and the web package's sources."""
    digest = hashlib.sha256(__version__.encode())
    folder = resources.files("modelbox.web")
    for f in sorted(folder.iterdir(), key=lambda f: f.name):
        if f.name.endswith(".py"):
            digest.update(f.name.encode() + f.read_bytes())
    for name, data in sorted(static_files().items()):
        digest.update(name.encode() + data)
    return digest.hexdigest()[:16]


def _key(*parts: object) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class BuildReport:
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: int = 0
    missing: set[str] = field(default_factory=set)
    workers: int = 1  # processes that built pages (1: this one)

    def to_json(self) -> dict[str, Any]:
        return {"written": len(self.written), "removed": len(self.removed), "kept": self.kept,
                "workers": self.workers, "pages": sorted(self.written)[:50]}


def _write(path: Path | str, data: bytes) -> None:
    """``data`` as the file ``path``, whole: a temporary file renamed into place. Few
    system calls (a site has 200,000 files): the folder is made only when the temporary
    file cannot be created for want of it."""
    path = os.fspath(path)
    folder, _, name = path.rpartition("/")
    tmp = f"{folder}/.{name}.{os.getpid()}.tmp"
    try:
        try:
            fd = os.open(tmp, _CREATE, 0o644)
        except FileNotFoundError:
            os.makedirs(folder, exist_ok=True)
            fd = os.open(tmp, _CREATE, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)


def write_page(out: Path, doc: dict[str, Any]) -> None:
    """``PATH.html`` and ``PATH.json`` of one page under ``out``."""
    base = f"{out}/{doc['path']}"
    _write(f"{base}.json", pages.dumps(doc).encode("utf-8"))
    if doc["kind"] not in ("search", "series"):  # data only
        _write(f"{base}.html", render(doc).encode("utf-8"))


def _load(out: Path) -> dict[str, Any]:
    try:
        doc = json.loads((out / MANIFEST).read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("kind") != KIND or doc.get("format") != FORMAT:
        return {}
    return doc


class _Plan:
    """Every page of the registry now: path -> (key, how to build it)."""

    def __init__(self, reader: pages.Reader, code: str) -> None:
        self.reader, self.code = reader, code
        self.pages: dict[str, tuple[str, Callable[[], dict[str, Any] | None]]] = {}

    def add(self, path: str, key: str, build: Callable[[], dict[str, Any] | None]) -> None:
        self.pages[path] = (_key(self.code, path, key), build)


class _Present:
    """Which pages OUT holds (their ``.json``), read a folder at a time: one listing of
    a model's ``_v`` folder instead of a ``stat`` per version page."""

    def __init__(self, out: Path) -> None:
        self.out = str(out)
        self.folders: dict[str, set[str]] = {}

    def __contains__(self, path: str) -> bool:
        folder, _, name = f"{path}.json".rpartition("/")
        names = self.folders.get(folder)
        if names is None:
            try:
                names = set(os.listdir(f"{self.out}/{folder}"))
            except OSError:  # no such folder (yet)
                names = set()
            self.folders[folder] = names
        return name in names


@dataclass
class _Shared:
    """What the pages of every model are built from: set before the worker processes
    fork, so they inherit it (the reader's models, links, events and timelines, read once
    by the parent) instead of each reading it again."""

    reader: pages.Reader
    out: Path
    code: str
    old_pages: dict[str, str]
    present: _Present
    docs: dict[str, dict[str, Any]]  # full name -> its model document (the listing's)
    jobs: list[tuple[str, str, Callable[[], dict[str, Any] | None]]]  # (path, key, build)


_SHARED: dict[str, _Shared] = {}  # "build": the build in progress, for its workers


@dataclass
class _Built:
    """What building some pages did: the keys of the pages there now, and which of them
    were written or turned out to be gone."""

    keys: dict[str, str] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # full name -> entry
    workers: int = 1

    def add(self, other: _Built) -> None:
        self.keys.update(other.keys)
        self.written += other.written
        self.missing += other.missing
        self.models.update(other.models)


def _make(shared: _Shared, path: str, key: str, build: Callable[[], dict[str, Any] | None],
          done: _Built) -> None:
    """Write the page at ``path`` unless the last build wrote it with the same key."""
    fresh = shared.old_pages.get(path) == key and path in shared.present
    try:
        doc = None if fresh else build()
    except ModelboxError as exc:  # a broken document: its page says so, the rest builds
        doc = pages.error(path, exc)
    if doc is not None:
        write_page(shared.out, doc)
        done.written.append(path)
    elif not fresh:
        done.missing.append(path)  # gone between the plan and now: no page
        return
    done.keys[path] = key


def _unchanged(reader: pages.Reader, tree: str, links: dict[str, Any], old: Any,
               old_pages: dict[str, str], present: _Present) -> bool:
    """Whether nothing a model's pages were built from changed since the last build
    (``old``: its manifest entry then) and all their files are still there (one deleted
    by hand is written again)."""
    if not (isinstance(old, dict) and old.get("tree") == tree and old.get("links") == links
            and isinstance(old.get("pages"), list) and isinstance(old.get("deps", {}), dict)):
        return False
    snap = reader.snap
    return (all(snap.tree_id(p) == t for p, t in old.get("deps", {}).items())
            and all(path in old_pages and path in present for path in old["pages"]))


def _model_links(reader: pages.Reader, full: str) -> dict[str, list[str]]:
    return {source: found for source, found in reader.links().items()
            if source.partition("@")[0] == full}


def _model_pages(shared: _Shared, full: str, tree: str, done: _Built) -> None:
    """Build the pages of one model whose inputs changed (those of its pages whose key is
    the same as last time are kept); record its manifest entry in ``done``."""
    reader = shared.reader
    snap = reader.snap
    name = parse_model(full)
    links = _model_links(reader, full)
    try:
        versions, tags = reader.versions(name)
    except ModelboxError:  # a broken version manifest: the model page says which
        versions, tags = [], {}
    folder = layout.versions_dir(name)
    version_trees = {n: sha for n, is_dir, sha in snap.repo.tree_entries(
        snap.tree_id(folder) or "") if is_dir} if snap.tree_id(folder) else {}
    deps: dict[str, str | None] = {}
    paths = []

    def add(path: str, key: object, build: Callable[[], dict[str, Any] | None]) -> None:
        _make(shared, path, _key(shared.code, path, _key(key)), build, done)
        paths.append(path)

    add(f"m/{full}/_model", [tree, links], partial(pages.model, reader, full))
    add(f"m/{full}/_metrics", tree, partial(pages.metrics, reader, full))
    for n in range(1, -(-len(versions) // pages.PAGE_SIZE) + 1 if len(versions) >
                   pages.PAGE_SIZE else 1):
        add(f"m/{full}/_versions/{n}", [tree, links],
            partial(pages.versions_page, reader, full, n))
    for v in versions:
        version = v["version"]
        own_deps = {}
        checkpoint = (v.get("metadata") or {}).get("source_checkpoint")
        if isinstance(checkpoint, str) and "@" in checkpoint:
            with contextlib.suppress(ModelboxError):
                run = layout.experiment_dir(parse_model(checkpoint.rpartition("@")[0]))
                own_deps[run] = snap.tree_id(run)
        if v.get("link"):
            source = str(v["link"]).rpartition("@")[0]
            with contextlib.suppress(ModelboxError):
                src = layout.model_dir(parse_model(source))
                own_deps[src] = snap.tree_id(src)
        deps.update(own_deps)
        vtags = sorted(t for t, at in tags.items() if at == version)
        vlinks = links.get(f"{full}@{version}", [])
        vtree = version_trees.get(version)
        add(f"m/{full}/_v/{version}", [vtree, vtags, vlinks, own_deps],
            partial(pages.version, reader, full, version))
        if vtree is not None and any(n == layout.METRICS_FILE for n, _, _ in
                                     snap.repo.tree_entries(vtree)):
            add(f"m/{full}/_series/{version}", vtree,
                partial(pages.series, reader, full, version))
    doc = shared.docs.get(full)
    done.models[full] = {"tree": tree, "links": links, "deps": deps,
                         "pages": [p for p in paths if p in done.keys],
                         **({"summary": pages.summary(reader, doc)} if doc else {})}


def _work(task: tuple[list[int], list[tuple[str, str]]]) -> _Built:
    """Build some shared jobs (by index) and some models: one task of a worker process
    (or the whole build, in one process)."""
    shared = _SHARED["build"]  # set before the workers fork
    done = _Built()
    jobs, models = task
    for i in jobs:
        _make(shared, *shared.jobs[i], done)
    for full, tree in models:
        _model_pages(shared, full, tree, done)
        shared.reader.snap.forget_trees()  # memory bounded by one model, not the registry
    return done


def _tasks(jobs: int, models: list[tuple[str, str]],
           ) -> list[tuple[list[int], list[tuple[str, str]]]]:
    """The work cut into tasks of about the same cost: a few per worker (the fast one
    takes the next), each a run of models in name order."""
    if not models and not jobs:
        return []
    count = max(1, min(_TASKS, len(models) // _TASK_MODELS + 1))
    size = -(-len(models) // count)
    shares = [list(range(i, jobs, count)) for i in range(count)]
    return [(shares[i], models[i * size:(i + 1) * size]) for i in range(count)]


_TASKS = 64
_TASK_MODELS = 20
POOL_MIN = 100
"""Models (or log pages) to build below which one process does it: forking workers costs
more than it saves on an incremental build."""


def workers() -> int:
    """The processes a build uses by default: one per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _run(shared: _Shared, models: list[tuple[str, str]], jobs: int) -> _Built:
    """Build ``shared.jobs`` and ``models``: in ``jobs`` worker processes forked from
    this one when there is enough to do, else here. Every page is a function of the
    repository alone, so the files are the same byte for byte either way."""
    _SHARED["build"] = shared
    done = _Built()
    try:
        tasks = _tasks(len(shared.jobs), models)
        if (jobs > 1 and len(models) + len(shared.jobs) >= POOL_MIN
                and "fork" in multiprocessing.get_all_start_methods()):
            # fork: the workers inherit what the parent read (no pickling of the reader);
            # dulwich reads packs through mmap, so they share no file position.
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(jobs, mp_context=context) as pool:
                for part in pool.map(_work, tasks):
                    done.add(part)
            done.workers = jobs
        else:
            for task in tasks:
                done.add(_work(task))
    finally:
        del _SHARED["build"]
    return done


def build(registry: Any, out: Path, *, jobs: int | None = None) -> BuildReport:
    """Write the site of ``registry`` into ``out``; only pages whose inputs changed.
    ``jobs``: worker processes (default: one per core; 1 builds in this process)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InvalidValueError(f"{out} is a file; give a folder to build the site in")
    if jobs is not None and jobs < 1:
        raise InvalidValueError(f"--jobs {jobs}: give 1 or more worker processes")
    out.mkdir(parents=True, exist_ok=True)
    manifest = _load(out)
    code = code_key()
    same_code = manifest.get("code") == code
    old_pages: dict[str, str] = dict(manifest.get("pages", {})) if same_code else {}
    old_models: dict[str, Any] = dict(manifest.get("models", {})) if same_code else {}
    reader = pages.Reader(registry)
    log = _seed_log(reader, manifest.get("log") if same_code else None, out)
    from modelbox.listing import model_trees

    trees = model_trees(reader.snap)
    kept: dict[str, Any] = {}
    changed: list[tuple[str, str]] = []
    present = _Present(out)
    for full, tree in sorted(trees.items()):
        old = old_models.get(full)
        if _unchanged(reader, tree, _model_links(reader, full), old, old_pages, present):
            kept[full] = old
            if isinstance(old, dict) and isinstance(old.get("summary"), dict):
                reader.summaries[full] = old["summary"]
        else:
            changed.append((full, tree))
    log_plan = _Plan(reader, code)
    _plan_log(log_plan, old_pages)
    # Read before the workers fork: what every model's pages share.
    docs: dict[str, dict[str, Any]] = {}
    with contextlib.suppress(ModelboxError):  # a broken model manifest: its pages say so
        docs = {_name(d): d for d in reader.models()} if changed else {}
    reader.prepare_timelines(len(changed) > _TIMELINES_BULK)
    fresh = {path: key for path, (key, _) in log_plan.pages.items()
             if old_pages.get(path) == key and path in present}
    shared = _Shared(reader, out, code, old_pages, present, docs,
                     [(path, key, make) for path, (key, make) in log_plan.pages.items()
                      if path not in fresh])  # only what is to be written goes to workers
    done = _run(shared, changed, jobs if jobs is not None else workers())
    done.keys.update(fresh)
    for full, entry in done.models.items():
        if "summary" in entry:
            reader.summaries[full] = entry["summary"]
    plan = _Plan(reader, code)
    _plan_pages(plan, registry, trees)
    _write_changed(plan, shared, done)
    keys = {path: old_pages[path] for entry in kept.values() for path in entry["pages"]}
    keys.update(done.keys)
    report = BuildReport(written=done.written, kept=len(keys) - len(done.written),
                         missing=set(done.missing), workers=done.workers)
    report.removed = _remove(out, set(manifest.get("pages", {})) - set(keys)
                             | report.missing)
    start = (reader.event_count() - 1) // pages.PAGE_SIZE * pages.PAGE_SIZE
    log["count"], log["tail"] = reader.event_count(), reader.event_slice(
        max(start, 0), reader.event_count())
    _write(out / MANIFEST, json.dumps({
        "kind": KIND, "format": FORMAT, "code": code, "commit": reader.commit,
        "pages": keys, "models": {**kept, **done.models}, "log": log,
    }, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    return report


_TIMELINES_BULK = 20
"""Models to build above which their tag timelines are cut from one read of the whole
audit log rather than read model by model through the audit index."""


_CHAIN_LIMIT = 2000


def _seed_log(reader: pages.Reader, old: Any, out: Path) -> dict[str, Any]:
    """Where the audit log stands now (branch head, downloads head); when the last build
    saw an ancestor reached by single-parent commits and the same downloads, give the
    reader only the events since then (on top of the last build's newest page) instead of
    the whole history. Returns the log entry of the manifest (count and tail added later)."""
    from modelbox.audit_index import events_of
    from modelbox.outside import OutsideMoves
    from modelbox.registry import AUDIT_REF

    registry = reader.registry
    now = {"head": registry.head(), "side": registry.repo.ref(AUDIT_REF)}
    if not (isinstance(old, dict) and old.get("side") == now["side"]
            and isinstance(old.get("head"), str) and isinstance(old.get("count"), int)
            and isinstance(old.get("tail"), list) and now["head"] is not None):
        return now
    chain: list[Any] = []
    sha: str = now["head"]
    while sha != old["head"]:
        record = registry.history.record(sha)
        if len(chain) == _CHAIN_LIMIT or len(record.parents) != 1:
            return now  # a merge, a rewrite or a long way: read the whole log
        chain.append(record)
        sha = record.parents[0]
    start = old["count"] - len(old["tail"])
    if start % pages.PAGE_SIZE or any(not (out / f"log/{n}.json").is_file()
                                      for n in range(1, start // pages.PAGE_SIZE + 1)):
        return now
    outside = OutsideMoves(registry.repo)
    new = [e.to_json() for record in reversed(chain)
           for e in reversed(events_of(record, outside))]
    outside.save()
    reader.seed_events(start, [*old["tail"], *new])
    return now


def _plan_log(plan: _Plan, old_pages: dict[str, str]) -> None:
    """Add the audit log's numbered pages: those before the first page the reader read
    are full, so kept as they are."""
    reader = plan.reader
    log_count = pages.log_pages(reader)
    first = reader.event_start() // pages.PAGE_SIZE + 1  # pages before it are full: kept
    for n in range(1, first):
        if f"log/{n}" in old_pages:
            plan.pages[f"log/{n}"] = (old_pages[f"log/{n}"], partial(pages.log, reader, n))
    for n in range(first, log_count + 1):
        chunk = reader.event_slice((n - 1) * pages.PAGE_SIZE, n * pages.PAGE_SIZE)
        plan.add(f"log/{n}", _key([e["commit"] + e["operation"] + e["target"] for e in chunk]),
                 partial(pages.log, reader, n))


def _plan_pages(plan: _Plan, registry: Any, trees: dict[str, str]) -> None:
    """Add the pages that list models, experiments, collections and reviews to ``plan``."""
    reader = plan.reader
    by_ns: dict[str, list[str]] = {}
    for full, tree in trees.items():
        by_ns.setdefault(full.rpartition("/")[0], []).append(f"{full}={tree}")
    for ns in sorted({p for full in trees for p in _prefixes(full.rpartition("/")[0])}):
        below = sorted(n for n in by_ns if n.startswith(ns + "/"))
        plan.add(f"m/{ns}/_ns", _key(sorted(by_ns.get(ns, [])), below),
                 partial(pages.namespace, reader, ns))
    all_trees = _key(sorted(trees.items()))
    experiments_tree = reader.snap.tree_id(layout.EXPERIMENTS)
    branches = {b: str(registry.repo.ref(f"refs/heads/{b}")) for b in reader.branches()
                if _safe_branch(b)}
    plan.add("index", _key(all_trees, experiments_tree, branches, reader.commit),
             partial(pages.index, reader))
    plan.add("search", all_trees, partial(pages.search, reader))
    collections = {_name(d) for d in reader.models() if d.get("collection")}
    plan.add("collections", _key(sorted((m, t) for m, t in trees.items()
                                        if m in collections)),
             partial(pages.collections, reader))
    plan.add("experiments", str(experiments_tree), partial(pages.experiments, reader))
    for e in _experiments(reader):
        run = reader.snap.tree_id(layout.experiment_dir(parse_model(e)))
        plan.add(f"x/{e}/_experiment", str(run),
                 partial(pages.experiment, reader, e))
    count = reader.event_count()
    plan.add("log", _key(pages.log_pages(reader), count,
                         reader.event_slice(max(count - 1, 0), count)),
             partial(pages.latest_log, reader))
    base = registry.repo.ref(registry.branch_ref)
    for b, sha in branches.items():
        plan.add(f"review/{b}", _key(base, sha), partial(pages.review, reader, b))


def _write_changed(plan: _Plan, shared: _Shared, done: _Built) -> None:
    """Write the pages of ``plan`` whose key changed, and the static files."""
    for path, (key, make) in plan.pages.items():
        _make(shared, path, key, make, done)
    for name, data in static_files().items():
        target = shared.out / name
        if not target.is_file() or target.read_bytes() != data:
            _write(target, data)


def _remove(out: Path, gone: set[str]) -> list[str]:
    """Delete the files of pages no longer there."""
    for path in sorted(gone):
        for ext in (".html", ".json"):
            with contextlib.suppress(OSError):
                (out / f"{path}{ext}").unlink()
    return sorted(gone)


def _prefixes(ns: str) -> list[str]:
    parts = ns.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _name(doc: dict[str, Any]) -> str:
    return f"{doc['namespace']}/{doc['name']}"


def _experiments(reader: pages.Reader) -> list[str]:
    from modelbox.registry import manifest_paths

    start, end = len(layout.EXPERIMENTS) + 1, -len(layout.EXPERIMENT_FILE) - 1
    return [p[start:end] for p in manifest_paths(reader.snap, layout.EXPERIMENTS,
                                                 layout.EXPERIMENT_FILE, None)]


def _safe_branch(branch: str) -> bool:
    try:
        check_branch(branch)
    except ModelboxError:
        return False
    return True
