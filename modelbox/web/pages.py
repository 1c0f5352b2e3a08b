"""The page model: one function per page, repository data -> a dict (the page's ``.json``
twin), and :func:`page` that maps a URL path to the function that builds it.

Every page has a path without extension (``m/ai/yolo/_model``); the HTML page is
``PATH.html``, its twin ``PATH.json`` (docs/web.md lists them). Folders of the
repository's names hold pages whose file names start with ``_``, which no name segment
may start with, so a model ``ai/vision`` and a model ``ai/vision/yolo`` never collide.

Data comes from the repository alone, through the read paths the CLI uses
(:mod:`modelbox.listing`, the audit index behind :meth:`Registry.log`, the resolver);
nothing here touches the object store.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelbox import layout, limits
from modelbox.errors import ModelboxError
from modelbox.names import ModelName, parse_model, parse_reference

if TYPE_CHECKING:
    from modelbox.refs import Snapshot
    from modelbox.registry import Registry

__all__ = ["PAGE_SIZE", "Reader", "page"]

PAGE_SIZE = 200
"""Rows per page of a long list (the audit log, a model's versions), counted from the
oldest entry: page 1 holds the oldest, so a written page keeps its URL and content."""
DESCRIPTION_MAX = 20_000
"""Characters of a description shown on a page (the renderer cuts it; the ``.json`` twin
keeps it whole)."""
CHART_POINTS = 500
"""Buckets a series is decimated to for display (two points each: min and max)."""
_VERSIONS_KEPT = 8


@dataclass
class Reader:
    """One registry at one commit, and what several pages share (read once)."""

    registry: Registry
    snap: Snapshot = field(init=False)
    _models: list[dict[str, Any]] | None = None
    _links: dict[str, list[str]] | None = None
    _events: list[dict[str, Any]] | None = None
    _events_start: int = 0  # the index of _events[0] in the whole log (see seed_events)
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    use_store: bool = False  # `modelbox ui`: list a directory artifact's files if it can
    _tags: dict[str, dict[str, str]] = field(default_factory=dict)
    # The last few models' versions: a model's pages (model, versions, each version) are
    # built one after another and all read its version list.
    _versions: OrderedDict[str, tuple[list[dict[str, Any]], dict[str, str]]] = field(
        default_factory=OrderedDict)
    _timelines: dict[str, list[dict[str, Any]]] | None = None

    def __post_init__(self) -> None:
        self.snap = self.registry.snapshot()

    @property
    def commit(self) -> str | None:
        return self.snap.commit

    def models(self) -> list[dict[str, Any]]:
        if self._models is None:
            from modelbox.listing import model_documents

            self._models = model_documents(self.snap)
        return self._models

    def links(self) -> dict[str, list[str]]:
        """Source ``M@V`` -> the collection links naming it."""
        if self._links is None:
            from modelbox.collections import links_in

            found: dict[str, list[str]] = {}
            for doc in self.models():  # collections are few: read only theirs
                if doc.get("collection"):
                    name = parse_model(_full(doc))
                    for version, source in links_in(self.snap, name).items():
                        found.setdefault(source, []).append(f"{name}@{version}")
            self._links = {k: sorted(v) for k, v in found.items()}
        return self._links

    def events(self) -> list[dict[str, Any]]:
        """The audit events from :meth:`event_start` on (all unless seeded), oldest first."""
        if self._events is None:
            self._events = [e.to_json() for e in reversed(self.registry.log(None))]
        return self._events

    def seed_events(self, start: int, events: list[dict[str, Any]]) -> None:
        """Know only the events from index ``start`` on (a site rebuild that read the
        commits since its last build, not the whole history)."""
        self._events_start, self._events = start, events

    def event_start(self) -> int:
        self.events()
        return self._events_start

    def event_count(self) -> int:
        return self._events_start + len(self.events())

    def event_slice(self, start: int, end: int) -> list[dict[str, Any]]:
        if start < self._events_start:
            raise IndexError(f"events before {self._events_start} were not read")
        return self.events()[start - self._events_start: end - self._events_start]

    def versions(self, model: ModelName) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """Every version of ``model`` oldest first (archived too) and its tag map, from
        the listing cache; a broken tag map reads as no tags (`modelbox check` says why)."""
        key = str(model)
        found = self._versions.get(key)
        if found is None:
            found = self._versions[key] = self._read_versions(model)
            while len(self._versions) > _VERSIONS_KEPT:
                self._versions.popitem(last=False)
        return found

    def _read_versions(self, model: ModelName) -> tuple[list[dict[str, Any]], dict[str, str]]:
        from modelbox.listing import version_documents

        try:
            return version_documents(self.registry, model)
        except ModelboxError:
            versions = self.registry.versions_in(self.snap, model, archived=True)
            return [v.model_dump(mode="json") for v in versions], self.tags(model)

    def timeline(self, model: ModelName) -> list[dict[str, Any]]:
        """Every move of ``model``'s tags, newest first, from the audit log: cut from the
        whole log when it was read (:meth:`prepare_timelines`), else read through the
        audit index (this model's commits only)."""
        self.prepare_timelines(False)
        if self._timelines is not None:
            return self._timelines.get(str(model), [])
        return [e.to_json() for e in self.registry.log(str(model))
                if e.operation.startswith("tag.")]

    def prepare_timelines(self, read_log: bool) -> None:
        """Cut every model's tag timeline from the whole audit log in one pass, when the
        log was read already (a full site build reads it for the log pages) or when
        ``read_log`` (many models' pages to build: one read of the log is cheaper than
        one audit index lookup per model)."""
        if self._timelines is not None:
            return
        if self._events is not None and not self._events_start:
            events: list[dict[str, Any]] = self._events
        elif read_log:
            events = [e.to_json() for e in reversed(self.registry.log(None))
                      if e.operation.startswith("tag.")]
        else:
            return
        from modelbox.audit import model_of

        found: dict[str, list[dict[str, Any]]] = {}
        for event in reversed(events):
            if event["operation"].startswith("tag."):
                found.setdefault(model_of(event["target"]), []).append(event)
        self._timelines = found

    def tags(self, model: ModelName) -> dict[str, str]:
        found = self._tags.get(str(model))
        if found is None:
            found = self._tags[str(model)] = self._read_tags(model)
        return found

    def _read_tags(self, model: ModelName) -> dict[str, str]:
        from modelbox.documents import parse_tags

        path = layout.tags_file(model)
        data = self.snap.read(path)
        try:
            return {} if data is None else parse_tags(path, data)
        except ModelboxError:  # a broken tag map: shown as none, `modelbox check` reports
            return {}

    def version_count(self, model: ModelName) -> int:
        return sum(1 for _, is_dir in self.snap.listdir(layout.versions_dir(model)) if is_dir)

    def branches(self) -> list[str]:
        """Local branches other than the registry branch: proposals to review."""
        prefix = "refs/heads/"
        return sorted(name[len(prefix):] for name in self.registry.repo.refs_under(prefix)
                      if name[len(prefix):] != self.registry.branch)


def _full(doc: dict[str, Any]) -> str:
    return f"{doc['namespace']}/{doc['name']}"


def _short(text: str) -> tuple[str, bool]:
    return (text, False) if len(text) <= DESCRIPTION_MAX else (text[:DESCRIPTION_MAX], True)


def summary(reader: Reader, doc: dict[str, Any]) -> dict[str, Any]:
    """One model as the index, a namespace page and the search data list it (from
    ``reader.summaries`` when a site build knows it is unchanged)."""
    known = reader.summaries.get(_full(doc))
    if known is not None:
        return known
    name = parse_model(_full(doc))
    description, _ = _short(str(doc.get("description", "")))
    found = reader.summaries[_full(doc)] = {
        "model": str(name), "namespace": doc["namespace"], "name": doc["name"],
        "owner": doc.get("owner", ""), "task": doc.get("task", ""),
        "description": description[:300], "collection": bool(doc.get("collection")),
        "tags": sorted(reader.tags(name)), "versions": reader.version_count(name),
    }
    return found


# -- pages -----------------------------------------------------------------------------
def index(reader: Reader) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for doc in reader.models():
        counts[doc["namespace"]] = counts.get(doc["namespace"], 0) + 1
    from modelbox.lifecycle import list_experiments

    return {
        "kind": "index", "path": "index", "title": "Models",
        "namespaces": [{"namespace": ns, "models": n} for ns, n in sorted(counts.items())],
        "models": sum(counts.values()),
        "experiments": len(list_experiments(reader.registry)),
        "reviews": reader.branches(),
        "commit": reader.commit,
    }


def search(reader: Reader) -> dict[str, Any]:
    """The data the index's search and filters read: every model, briefly."""
    return {"kind": "search", "path": "search",
            "models": [summary(reader, doc) for doc in reader.models()]}


def namespace(reader: Reader, ns: str) -> dict[str, Any] | None:
    rows = [summary(reader, doc) for doc in reader.models() if doc["namespace"] == ns]
    below = sorted({doc["namespace"] for doc in reader.models()
                    if doc["namespace"].startswith(ns + "/")})
    if not rows and not below:
        return None
    return {"kind": "namespace", "path": f"m/{ns}/_ns", "title": f"Namespace {ns}",
            "namespace": ns, "models": rows, "namespaces": below}


def _model_doc(reader: Reader, name: ModelName) -> dict[str, Any] | None:
    from modelbox.manifests import ModelManifest, parse

    data = reader.snap.read(layout.model_file(name))
    if data is None:
        return None
    return parse(ModelManifest, layout.model_file(name), data).model_dump(mode="json")


def _version_rows(reader: Reader, name: ModelName) -> list[dict[str, Any]]:
    """Every version, oldest first, as the model page lists them."""
    versions, tags = reader.versions(name)
    by_version: dict[str, list[str]] = {}
    for tag, version in sorted(tags.items()):
        by_version.setdefault(version, []).append(tag)
    links = reader.links()
    rows = []
    for v in versions:
        version = v["version"]
        released = v.get("released")
        rows.append({
            "version": version, "name": v.get("name", ""), "framework": v.get("framework"),
            "created_at": v.get("created_at"), "archived": bool(v.get("archived")),
            "released": released.get("at") if isinstance(released, dict) else None,
            "link": v.get("link"), "tags": by_version.get(version, []),
            "size": _size(reader.snap, name, version),
            "collections": links.get(f"{name}@{version}", []),
            "metrics": v.get("metrics", {}),
        })
    return rows


def _size(snap: Snapshot, name: ModelName, version: str) -> int:
    """The bytes of a version's artifacts, from its pointers (no store read)."""
    from modelbox.releases import pointer_paths

    total = 0
    root = f"{layout.version_dir(name, version)}/{layout.ARTIFACTS_DIR}"
    for path in pointer_paths(snap, root):
        try:
            doc = limits.loads(snap.read(path) or b"{}", path)
        except ValueError:
            continue
        size = doc.get("size") if isinstance(doc, dict) else None
        if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
            total += size
    return total


def model(reader: Reader, full: str) -> dict[str, Any] | None:
    name = parse_model(full)
    doc = _model_doc(reader, name)
    if doc is None:
        return None
    rows = _version_rows(reader, name)
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    newest = list(reversed(rows[(pages - 1) * PAGE_SIZE:]))
    if pages > 1 and len(newest) < PAGE_SIZE:  # a full page of the newest on the model page
        newest = list(reversed(rows[-PAGE_SIZE:]))
    timeline = reader.timeline(name)
    return {
        "kind": "model", "path": f"m/{name}/_model", "title": str(name), "model": str(name),
        "manifest": doc, "tags": reader.tags(name), "versions": newest, "version_total": len(rows),
        "version_pages": pages if len(rows) > PAGE_SIZE else 0,
        "timeline": timeline,
    }


def versions_page(reader: Reader, full: str, number: int) -> dict[str, Any] | None:
    name = parse_model(full)
    if _model_doc(reader, name) is None:
        return None
    rows = _version_rows(reader, name)
    chunk = rows[(number - 1) * PAGE_SIZE: number * PAGE_SIZE]
    if number < 1 or not chunk:
        return None
    return {"kind": "versions", "path": f"m/{name}/_versions/{number}",
            "title": f"{name}: versions, page {number}", "model": str(name),
            "page": number, "full": len(chunk) == PAGE_SIZE, "versions": chunk}


def _json_file(snap: Snapshot, path: str) -> Any:
    data = snap.read(path)
    if data is None:
        return None
    try:
        return limits.loads(data, path)
    except ValueError:
        return None


def version(reader: Reader, full: str, version_name: str) -> dict[str, Any] | None:
    from modelbox.manifests import VersionManifest, parse

    name = parse_model(full)
    path = layout.version_file(name, version_name)
    data = reader.snap.read(path)
    if data is None:
        return None
    doc = parse(VersionManifest, path, data).model_dump(mode="json")
    ref = parse_reference(f"{name}@{version_name}")
    folder = layout.version_dir(name, version_name)
    present = {entry for entry, _ in reader.snap.listdir(folder)}
    problems: list[str] = []
    artifacts: list[dict[str, Any]] = []
    if layout.ARTIFACTS_DIR in present or doc.get("link"):
        try:
            from modelbox.artifacts import list_artifacts

            artifacts = [a.to_json() for a in list_artifacts(reader.registry, ref)]
        except ModelboxError as exc:  # a broken pointer or a release digest that differs
            problems.append(str(exc))
        for artifact in artifacts:
            if artifact["directory"] and artifact["sha256"]:
                artifact["listing"] = directory_files(reader, artifact["sha256"])
    events = _json_file(reader.snap, f"{folder}/{layout.EVENTS_FILE}") if (
        layout.EVENTS_FILE in present) else None
    tags = sorted(t for t, v in reader.tags(name).items() if v == version_name)
    return {
        "kind": "version", "path": f"m/{name}/_v/{version_name}",
        "title": f"{name}@{version_name}", "model": str(name), "version": version_name,
        "manifest": doc, "tags": tags, "artifacts": artifacts, "problems": problems,
        "lineage": _lineage(reader, ref, doc),
        "events": (events.get("events") if isinstance(events, dict) else None) or [],
        "collections": reader.links().get(f"{name}@{version_name}", []),
        "series": f"m/{name}/_series/{version_name}" if layout.METRICS_FILE in present
        else None,
    }


LISTING_MAX = 1000
"""Files of a directory artifact listed on its version page."""


def directory_files(reader: Reader, digest: str) -> dict[str, Any]:
    """The files of the directory artifact ``digest`` from the object store, when the
    reader may use it and it answers: ``{"files": [{path, size, sha256}], "total": N}``,
    else ``{"unavailable": why}``. The listing is verified against its digest."""
    if not reader.use_store:
        return {"unavailable": "a static site does not read the object store; "
                "`modelbox ui` or `modelbox artifact list` shows the files"}
    from modelbox.artifacts import open_registry_store
    from modelbox.manifests import DirectoryManifest, parse

    try:
        store = open_registry_store(reader.registry)
        listing = parse(DirectoryManifest, f"sha256:{digest}", store.open_bytes(digest))
    except (ModelboxError, OSError) as exc:
        return {"unavailable": f"store not reachable: {exc}"}
    entries = sorted([*listing.files, *(f for pack in listing.packs for f in pack.files)],
                     key=lambda f: f.path)  # small files are stored in packs
    files = [{"path": f.path, "size": f.size, "sha256": f.sha256}
             for f in entries[:LISTING_MAX]]
    return {"files": files, "total": len(entries)}


def _lineage(reader: Reader, ref: Any, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps from a version to its training run (:mod:`modelbox.lineage`); a version
    that is no link and names no source checkpoint is its own lineage, told without
    reading it again."""
    if doc.get("link") or "source_checkpoint" in doc.get("metadata", {}):
        from modelbox.lineage import lineage

        return [n.to_json() for n in lineage(reader.registry, ref)]
    return [{"kind": "version", "name": f"{ref.model}@{ref.version}", "missing": False,
             "metrics": doc.get("metrics", {}), "archived": doc.get("archived", False)}]


def _series(snap: Snapshot, folder: str) -> dict[str, list[dict[str, Any]]]:
    doc = _json_file(snap, f"{folder}/{layout.METRICS_FILE}")
    series = doc.get("series") if isinstance(doc, dict) else None
    if not isinstance(series, dict):
        return {}
    return {str(k): [p for p in v if isinstance(p, dict)] for k, v in series.items()
            if isinstance(v, list)}


def series(reader: Reader, full: str, version_name: str) -> dict[str, Any] | None:
    """The full metric series of one version (the chart shows them decimated)."""
    name = parse_model(full)
    folder = layout.version_dir(name, version_name)
    if not reader.snap.exists(f"{folder}/{layout.METRICS_FILE}"):
        return None
    return {"kind": "series", "path": f"m/{name}/_series/{version_name}",
            "target": f"{name}@{version_name}", "series": _series(reader.snap, folder)}


def decimate(points: list[dict[str, Any]], buckets: int = CHART_POINTS) -> list[list[Any]]:
    """``[step, wallclock, value]`` of the numeric points, at most two per bucket (the
    lowest and highest value of each run of ``len/buckets`` points, in order): the shape
    of the curve, spikes included, at a size a browser draws at once."""
    rows: list[list[Any]] = [[p.get("step"), p.get("wallclock"), p.get("value")] for p in points
            if isinstance(p.get("value"), int | float) and not isinstance(p.get("value"), bool)]
    if len(rows) <= 2 * buckets:
        return rows
    out: list[list[Any]] = []
    size = len(rows) / buckets
    for b in range(buckets):
        chunk = rows[int(b * size): int((b + 1) * size)]
        if not chunk:
            continue
        low = min(range(len(chunk)), key=lambda i: float(chunk[i][2]))
        high = max(range(len(chunk)), key=lambda i: float(chunk[i][2]))
        out.extend(chunk[i] for i in sorted({low, high}))
    return out


def _chart(entries: list[tuple[str, str, dict[str, list[dict[str, Any]]]]],
           ) -> list[dict[str, Any]]:
    """Chart series from ``(label, full-series path, series by key)``."""
    out = []
    for label, full, by_key in entries:
        for key, points in sorted(by_key.items()):
            shown = decimate(points)
            if shown:
                out.append({"label": label, "key": key, "points": shown,
                            "total": len(points), "full": full})
    return out


def metrics(reader: Reader, full: str) -> dict[str, Any] | None:
    name = parse_model(full)
    if _model_doc(reader, name) is None:
        return None
    entries = []
    for v, is_dir in reader.snap.listdir(layout.versions_dir(name)):
        if is_dir:
            entries.append((v, f"m/{name}/_series/{v}",
                            _series(reader.snap, layout.version_dir(name, v))))
    return {"kind": "metrics", "path": f"m/{name}/_metrics", "title": f"{name}: metrics",
            "model": str(name), "chart": _chart(entries)}


def experiments(reader: Reader) -> dict[str, Any]:
    from modelbox.lifecycle import list_experiments

    rows = [{"experiment": f"{e.namespace}/{e.name}", "owner": e.owner, "task": e.task,
             "framework": e.framework.value, "created_at": e.created_at.isoformat()}
            for e in list_experiments(reader.registry)]
    return {"kind": "experiments", "path": "experiments", "title": "Experiments",
            "experiments": rows}


def experiment(reader: Reader, full: str) -> dict[str, Any] | None:
    from modelbox.manifests import CheckpointManifest, ExperimentManifest, parse

    name = parse_model(full)
    path = layout.experiment_file(name)
    data = reader.snap.read(path)
    if data is None:
        return None
    doc = parse(ExperimentManifest, path, data).model_dump(mode="json")
    folder = f"{layout.experiment_dir(name)}/{layout.CHECKPOINTS_DIR}"
    checkpoints, entries = [], []
    for ckpt, is_dir in reader.snap.listdir(folder):
        cpath = f"{folder}/{ckpt}/{layout.CHECKPOINT_FILE}"
        cdata = reader.snap.read(cpath) if is_dir else None
        if cdata is None:
            continue
        checkpoints.append(parse(CheckpointManifest, cpath, cdata).model_dump(mode="json"))
        entries.append((ckpt, "", _series(reader.snap, f"{folder}/{ckpt}")))
    checkpoints.sort(key=lambda c: (c["created_at"], c["checkpoint"]))
    return {"kind": "experiment", "path": f"x/{name}/_experiment", "title": str(name),
            "experiment": str(name), "manifest": doc, "checkpoints": checkpoints,
            "chart": _chart(entries)}


def collections(reader: Reader) -> dict[str, Any]:
    from modelbox.collections import links_in

    rows = []
    for doc in reader.models():
        if doc.get("collection"):
            name = parse_model(_full(doc))
            rows.append({"collection": str(name), "description": _short(
                str(doc.get("description", "")))[0][:300], "tags": reader.tags(name),
                "links": links_in(reader.snap, name)})
    return {"kind": "collections", "path": "collections", "title": "Collections",
            "collections": rows}


def log_pages(reader: Reader) -> int:
    return max(1, -(-reader.event_count() // PAGE_SIZE))


def log(reader: Reader, number: int) -> dict[str, Any] | None:
    """Page ``number`` of the audit log, oldest first. A page holds nothing that depends
    on later events (no page count), so once full it never changes."""
    pages = log_pages(reader)
    if not 1 <= number <= pages:
        return None
    chunk = reader.event_slice((number - 1) * PAGE_SIZE, number * PAGE_SIZE)
    return {"kind": "log", "path": f"log/{number}", "title": f"Audit log, page {number}",
            "page": number, "full": len(chunk) == PAGE_SIZE, "events": chunk}


def latest_log(reader: Reader) -> dict[str, Any]:
    """The newest page of the audit log, at a URL that always shows the newest."""
    doc = log(reader, log_pages(reader)) or {}
    return {**doc, "path": "log", "title": "Audit log, newest page", "full": False}


def review(reader: Reader, branch: str) -> dict[str, Any] | None:
    from modelbox.diff import diff

    if branch not in reader.branches():
        return None
    result = diff(reader.registry, reader.registry.branch, branch)
    return {"kind": "review", "path": f"review/{branch}",
            "title": f"Review: {reader.registry.branch} -> {branch}", "branch": branch,
            "diff": result.to_json()}


# -- routing ---------------------------------------------------------------------------
def page(reader: Reader, path: str) -> dict[str, Any] | None:
    """The page at ``path`` (no extension), or None when there is none. A malformed name
    in the path is no page either (its ModelboxError is not an error of the site)."""
    try:
        return _route(reader, path)
    except (ValueError, KeyError):
        return None


def _route(reader: Reader, path: str) -> dict[str, Any] | None:
    fixed = {"index": index, "search": search, "experiments": experiments,
             "collections": collections, "log": latest_log}
    if path in fixed:
        return fixed[path](reader)
    head, _, rest = path.partition("/")
    if head == "log" and rest.isdigit():
        return log(reader, int(rest))
    if head == "review" and rest:
        return review(reader, rest)
    if head == "x" and rest.endswith("/_experiment"):
        return _named(lambda: experiment(reader, rest[: -len("/_experiment")]))
    if head != "m" or "/_" not in rest:
        return None
    base, _, tail = rest.partition("/_")
    kind, _, arg = tail.partition("/")
    if kind == "ns" and not arg:
        return _named(lambda: namespace(reader, parse_model(f"{base}/x").namespace))
    if kind == "model" and not arg:
        return _named(lambda: model(reader, base))
    if kind == "metrics" and not arg:
        return _named(lambda: metrics(reader, base))
    if kind == "versions" and arg.isdigit():
        return _named(lambda: versions_page(reader, base, int(arg)))
    if kind in ("v", "series") and arg and "/" not in arg:
        build = version if kind == "v" else series
        # parse_model: the version is a valid name segment
        return _named(lambda: parse_model(f"{base}/{arg}") and build(reader, base, arg))
    return None


def _named(build: Any) -> dict[str, Any] | None:
    """``build()``, or None when a name in the path is not a valid name."""
    from modelbox.errors import InvalidNameError

    try:
        result: dict[str, Any] | None = build()
    except InvalidNameError:
        return None
    return result


def error(path: str, exc: ModelboxError) -> dict[str, Any]:
    """The page at ``path`` when its document cannot be read: the one line that says why."""
    return {"kind": "error", "path": path, "title": "This page cannot be shown",
            "error": str(exc)}


def dumps(doc: dict[str, Any]) -> str:
    """A page's ``.json`` twin, as served and written."""
    # Compact: json's C encoder (an indent would take its Python one, ~10x slower).
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, default=str,
                      separators=(",", ":")) + "\n"
