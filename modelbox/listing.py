"""Listing models without reading 5,000 manifests each time: ``model list``.

Listing every model means finding each ``_model.json`` under ``models/`` (a tree read per
namespace and per model) and parsing it (pydantic). At 5,000 models that was ~1.3 s a
call. Both results depend only on Git objects, which never change, so both are cached in
``.git/modelbox/listing.json`` (:mod:`modelbox.derived`), keyed by object id:

* ``trees``: a folder's tree sha -> its ``_model.json`` entry (sha, is-folder) and its
  sub-folders that a walk enters (names not starting with ``_``), with their tree shas.
  After a write only the trees on the changed path are new (``models/``, the namespace,
  the model): a listing reads those three and finds the rest in the cache.
* ``docs``: a ``_model.json`` blob sha -> the manifest as ``model list --json`` prints it
  (pydantic's ``model_dump(mode="json")``), stored only once the blob has passed the
  same parser as before (:func:`modelbox.manifests.parse`). A blob that fails is never
  stored, so it fails again, with the same one line, on every listing. Documents larger
  than 64 KiB are parsed each time rather than cached. The docs are also keyed by the
  code that parsed them (modelbox's version and ``manifests.py``'s size and mtime), so
  an upgrade reparses.

A save keeps the entries of the trees reachable from the current ``models/`` tree (and
those this listing visited) and the documents they name, so the file tracks the registry
instead of growing with every write.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from modelbox import __version__, derived, layout
from modelbox.names import ModelName, parse_namespace
from modelbox.refs import Snapshot

if TYPE_CHECKING:
    from modelbox.manifests import ModelManifest
    from modelbox.registry import Registry

__all__ = ["model_documents", "model_manifests", "model_names", "model_trees",
           "version_documents"]

KIND = "model-listing"
VERSIONS_KIND = "version-listing"
_DOC_CACHE_MAX = 64 * 1024
_Entry = tuple[list[Any] | None, list[list[str]]]  # ([sha, is_dir] of _model.json, [[name, tree]])


def _code() -> str:
    """What parsed the cached documents: modelbox's version and its ``manifests.py``."""
    try:
        stat = Path(__file__).with_name("manifests.py").stat()
    except OSError:  # not a plain folder of sources (a zip): the version alone
        return __version__
    return f"{__version__}:{stat.st_size}:{stat.st_mtime_ns}"


class _Cache:
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self.path = derived.folder(snap.repo.git_dir) / "listing.json"
        document = derived.load(self.path, KIND) or {}
        trees, docs = document.get("trees"), document.get("docs")
        self.trees: dict[str, Any] = trees if isinstance(trees, dict) else {}
        same_code = document.get("code") == _code()
        self.docs: dict[str, Any] = docs if isinstance(docs, dict) and same_code else {}
        self.visited: dict[str, _Entry] = {}
        self.changed = not same_code and bool(docs)

    def entry(self, tree: str) -> _Entry:
        """The ``_model.json`` entry and the folders to enter of the tree ``tree``."""
        found = self.visited.get(tree)
        if found is not None:
            return found
        cached = self.trees.get(tree)
        if _valid(cached):
            found = (cached[0], cached[1])
        else:
            model: list[Any] | None = None
            folders = []
            for name, is_dir, sha in self.snap.repo.tree_entries(tree):
                if is_dir and not name.startswith("_"):
                    folders.append([name, sha])
                elif name == layout.MODEL_FILE:
                    model = [sha, is_dir]
            found = (model, folders)
            self.changed = True
        self.visited[tree] = found
        return found

    def save(self, top: str | None) -> None:
        """Write the cache if this listing added to it: the trees reachable from ``top``
        (the ``models/`` tree) or visited, and the documents those trees name."""
        if not self.changed:
            return
        keep: dict[str, _Entry] = {}
        stack = [*([top] if top else []), *self.visited]
        while stack:
            tree = stack.pop()
            if tree in keep:
                continue
            found = self.visited.get(tree)
            if found is None:
                cached = self.trees.get(tree)
                if not _valid(cached):
                    continue  # not read by this listing nor cached: no longer needed
                found = (cached[0], cached[1])
            keep[tree] = found
            stack.extend(sha for _, sha in found[1])
        blobs = {model[0] for model, _ in keep.values() if model is not None}
        derived.save(self.path, KIND, {
            "code": _code(),
            "trees": {tree: list(found) for tree, found in keep.items()},
            "docs": {sha: doc for sha, doc in self.docs.items() if sha in blobs},
        })


def _valid(value: Any) -> TypeGuard[list[Any]]:
    """Whether a cached tree entry has the shape :meth:`_Cache.entry` writes."""
    return (
        isinstance(value, list) and len(value) == 2 and isinstance(value[1], list)
        and (value[0] is None or (isinstance(value[0], list) and len(value[0]) == 2
                                   and isinstance(value[0][0], str)))
        and all(isinstance(f, list) and len(f) == 2 and all(isinstance(s, str) for s in f)
                for f in value[1])
    )


def _found(cache: _Cache, namespace: str | None) -> list[tuple[str, list[Any]]]:
    """``(path, [sha, is_dir])`` of each model's ``_model.json`` under ``models/`` (or
    ``models/NAMESPACE``), exactly those :func:`modelbox.registry.manifest_paths` finds."""
    root = layout.MODELS + (f"/{parse_namespace(namespace)}" if namespace else "")
    tree = cache.snap.tree_id(root)
    out = []
    stack = [(root, tree)] if tree else []
    while stack:
        directory, sha = stack.pop()
        model, folders = cache.entry(sha)
        if model is not None and directory != root:
            out.append((f"{directory}/{layout.MODEL_FILE}", model))
        stack.extend((f"{directory}/{name}", sub) for name, sub in folders)
    return out


def model_names(snap: Snapshot) -> list[str]:
    """The full names of every model (and collection), sorted, from the cached tree walk
    alone: nothing is parsed (shell completion)."""
    cache = _Cache(snap)
    start, end = len(layout.MODELS) + 1, -len(layout.MODEL_FILE) - 1
    names = sorted(path[start:end] for path, _ in _found(cache, None))
    cache.save(snap.tree_id(layout.MODELS))
    return names


def model_documents(snap: Snapshot, namespace: str | None = None) -> list[dict[str, Any]]:
    """Every model (or those in ``namespace`` and below) as ``model list --json`` shows
    it, sorted by namespace and name; raise ManifestError for a manifest that is broken."""
    cache = _Cache(snap)
    out = []
    for path, (sha, is_dir) in _found(cache, namespace):
        doc = None if is_dir else cache.docs.get(sha)
        if not isinstance(doc, dict):
            manifest = _parse(snap, path, b"" if is_dir else snap.repo.blob_data(sha))
            doc = manifest.model_dump(mode="json")
            if not is_dir and len(str(doc)) <= _DOC_CACHE_MAX:
                cache.docs[sha] = doc
                cache.changed = True
        out.append(doc)
    cache.save(snap.tree_id(layout.MODELS))
    return sorted(out, key=lambda d: (d["namespace"], d["name"]))


def model_manifests(snap: Snapshot, namespace: str | None = None) -> list[ModelManifest]:
    """Every model (or those in ``namespace`` and below), parsed, sorted by namespace and
    name; raise ManifestError for a manifest that is broken."""
    cache = _Cache(snap)
    out = [_parse(snap, path, b"" if is_dir else snap.repo.blob_data(sha))
           for path, (sha, is_dir) in _found(cache, namespace)]
    cache.save(snap.tree_id(layout.MODELS))
    return sorted(out, key=lambda m: (m.namespace, m.name))


def _parse(snap: Snapshot, path: str, data: bytes) -> ModelManifest:
    from modelbox.manifests import ModelManifest, parse

    return parse(ModelManifest, path, data)


def version_documents(registry: Registry, model: ModelName,
                      ) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Every version of ``model``, archived ones too, as ``version list --json`` shows it
    (oldest first), and its tag map; raise as :meth:`Registry.list_versions` does.

    Both depend on the model's folder only, so they are cached by its tree sha (and the
    parsing code) in ``.git/modelbox/versions/<sha1 of the model>.json``: a write to the
    model (a version, a tag, metrics) changes that tree and the next listing parses again.
    """
    snap = registry.snapshot()
    tree = snap.tree_id(layout.model_dir(model))
    name = hashlib.sha1(str(model).encode("utf-8")).hexdigest()
    path = derived.folder(snap.repo.git_dir) / "versions" / f"{name}.json"
    cached = derived.load(path, VERSIONS_KIND)
    if (tree is not None and cached is not None and cached.get("tree") == tree
            and cached.get("model") == str(model) and cached.get("code") == _code()):
        versions, tags = cached.get("versions"), cached.get("tags")
        if (isinstance(versions, list) and all(isinstance(v, dict) for v in versions)
                and isinstance(tags, dict)):
            return versions, tags
    versions = [v.model_dump(mode="json")
                for v in registry.versions_in(snap, model, archived=True)]
    tags = registry.tags_in(snap, model)
    if tree is not None:
        derived.save(path, VERSIONS_KIND, {"model": str(model), "tree": tree, "code": _code(),
                                           "versions": versions, "tags": tags})
    return versions, tags


def model_trees(snap: Snapshot) -> dict[str, str]:
    """Every model's (and collection's) folder tree sha by full name, from the cached
    tree walk alone: what a page of the model was built from (:mod:`modelbox.web.site`)."""
    cache = _Cache(snap)
    root = layout.MODELS
    top = snap.tree_id(root)
    out: dict[str, str] = {}
    stack = [(root, top)] if top else []
    while stack:
        directory, sha = stack.pop()
        model, folders = cache.entry(sha)
        if model is not None and directory != root:
            out[directory[len(root) + 1:]] = sha
        stack.extend((f"{directory}/{name}", sub) for name, sub in folders)
    cache.save(top)
    return out
