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
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

from modelbox import __version__, layout
from modelbox.errors import InvalidValueError, ModelboxError
from modelbox.names import ModelName, check_branch, parse_model
from modelbox.web import pages
from modelbox.web.render import render

__all__ = ["BuildReport", "build", "code_key", "static_files", "write_page"]

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

    def to_json(self) -> dict[str, Any]:
        return {"written": len(self.written), "removed": len(self.removed), "kept": self.kept,
                "pages": sorted(self.written)[:50]}


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_page(out: Path, doc: dict[str, Any]) -> None:
    """``PATH.html`` and ``PATH.json`` of one page under ``out``."""
    _write(out / f"{doc['path']}.json", pages.dumps(doc).encode("utf-8"))
    if doc["kind"] not in ("search", "series"):  # data only
        _write(out / f"{doc['path']}.html", render(doc).encode("utf-8"))


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


def _model_pages(plan: _Plan, name: ModelName, tree: str, old: dict[str, Any] | None,
                 old_pages: dict[str, str]) -> dict[str, Any]:
    """Add the pages of one model; return its manifest entry (tree, deps, links, pages)."""
    reader, snap = plan.reader, plan.reader.snap
    links = {source: found for source, found in reader.links().items()
             if source.partition("@")[0] == str(name)}
    if (old is not None and old.get("tree") == tree and old.get("links") == links
            and all(snap.tree_id(p) == t for p, t in dict(old.get("deps", {})).items())):
        for path in old.get("pages", []):  # nothing it was built from changed
            if path in old_pages:
                plan.pages[path] = (old_pages[path], partial(pages.page, reader, path))
        if isinstance(old.get("summary"), dict):
            reader.summaries[str(name)] = old["summary"]
        return dict(old)
    full = str(name)
    versions, tags = reader.versions(name)
    version_trees = {n: sha for n, is_dir, sha in
                     snap.repo.tree_entries(snap.tree_id(layout.versions_dir(name)) or "")
                     if is_dir} if snap.tree_id(layout.versions_dir(name)) else {}
    deps: dict[str, str | None] = {}
    paths = []

    def add(path: str, key: object, build: Callable[[], dict[str, Any] | None]) -> None:
        plan.add(path, _key(key), build)
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
    return {"tree": tree, "links": links, "deps": deps, "pages": paths}


def build(registry: Any, out: Path) -> BuildReport:
    """Write the site of ``registry`` into ``out``; only pages whose inputs changed."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InvalidValueError(f"{out} is a file; give a folder to build the site in")
    out.mkdir(parents=True, exist_ok=True)
    manifest = _load(out)
    code = code_key()
    same_code = manifest.get("code") == code
    old_pages: dict[str, str] = dict(manifest.get("pages", {})) if same_code else {}
    old_models: dict[str, Any] = dict(manifest.get("models", {})) if same_code else {}
    reader = pages.Reader(registry)
    plan = _Plan(reader, code)
    log = _seed_log(reader, manifest.get("log") if same_code else None, out)
    models = _plan_pages(plan, registry, old_models, old_pages)
    report = _write_changed(plan, out, old_pages, manifest)
    for full, entry in models.items():
        if full in reader.summaries:
            entry["summary"] = reader.summaries[full]
    start = (reader.event_count() - 1) // pages.PAGE_SIZE * pages.PAGE_SIZE
    log["count"], log["tail"] = reader.event_count(), reader.event_slice(
        max(start, 0), reader.event_count())
    _write(out / MANIFEST, json.dumps({
        "kind": KIND, "format": FORMAT, "code": code, "commit": reader.commit,
        "pages": {path: key for path, (key, _) in plan.pages.items()
                  if path not in report.missing}, "models": models, "log": log,
    }, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    return report


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


def _plan_pages(plan: _Plan, registry: Any, old_models: dict[str, Any],
                old_pages: dict[str, str]) -> dict[str, Any]:
    """Add every page to ``plan``; return the manifest's entry of each model."""
    reader = plan.reader
    from modelbox.listing import model_trees

    trees = model_trees(reader.snap)
    models: dict[str, Any] = {}
    for full, tree in sorted(trees.items()):
        models[full] = _model_pages(plan, parse_model(full), tree, old_models.get(full),
                                    old_pages)
    by_ns: dict[str, list[str]] = {}
    for full in trees:
        ns = full.rpartition("/")[0]
        by_ns.setdefault(ns, []).append(f"{full}={trees[full]}")
    for ns in sorted({p for full in trees for p in _prefixes(full.rpartition("/")[0])}):
        below = sorted(n for n in by_ns if n.startswith(ns + "/"))
        plan.add(f"m/{ns}/_ns", _key(sorted(by_ns.get(ns, [])), below),
                 partial(pages.namespace, reader, ns))
    all_trees = _key(sorted(trees.items()))
    experiments_tree = reader.snap.tree_id(layout.EXPERIMENTS)
    branches = {b: str(registry.repo.ref(f"refs/heads/{b}")) for b in reader.branches()
                if _safe_branch(b)}
    log_count = pages.log_pages(reader)
    first = reader.event_start() // pages.PAGE_SIZE + 1  # pages before it are full: kept
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
    for n in range(1, first):
        if f"log/{n}" in old_pages:
            plan.pages[f"log/{n}"] = (old_pages[f"log/{n}"], partial(pages.log, reader, n))
    for n in range(first, log_count + 1):
        chunk = reader.event_slice((n - 1) * pages.PAGE_SIZE, n * pages.PAGE_SIZE)
        plan.add(f"log/{n}", _key([e["commit"] + e["operation"] + e["target"] for e in chunk]),
                 partial(pages.log, reader, n))
    count = reader.event_count()
    plan.add("log", _key(log_count, count, reader.event_slice(max(count - 1, 0), count)),
             partial(pages.latest_log, reader))
    base = registry.repo.ref(registry.branch_ref)
    for b, sha in branches.items():
        plan.add(f"review/{b}", _key(base, sha), partial(pages.review, reader, b))
    return models


def _write_changed(plan: _Plan, out: Path, old_pages: dict[str, str],
                   manifest: dict[str, Any]) -> BuildReport:
    """Write the pages whose key changed, remove those no longer there."""
    report = BuildReport()
    root = str(out)
    for path, (key, make) in plan.pages.items():
        fresh = old_pages.get(path) == key and os.path.isfile(f"{root}/{path}.json")
        try:
            doc = None if fresh else make()
        except ModelboxError as exc:  # a broken document: its page says so, the rest builds
            doc = pages.error(path, exc)
        if doc is not None:
            write_page(out, doc)
            report.written.append(path)
        elif not fresh:
            report.missing.add(path)  # gone between the plan and now: no page
        else:
            report.kept += 1
    gone = set(manifest.get("pages", {})) - set(plan.pages) | report.missing
    for path in sorted(gone):
        for ext in (".html", ".json"):
            with contextlib.suppress(OSError):
                (out / f"{path}{ext}").unlink()
        report.removed.append(path)
    for name, data in static_files().items():
        target = out / name
        if not target.is_file() or target.read_bytes() != data:
            _write(target, data)
    return report


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
