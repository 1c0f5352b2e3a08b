"""The registry's rules: each document against its schema, and the invariants between files.

One engine serves two callers over two views of the same files (anything with ``read`` and
``listdir``, see :class:`Files`):

* ``modelbox check`` runs :func:`check` over every file of the registry branch's committed
  tree, then compares the tag refs with the manifests (drift is ``fixable``: ``modelbox
  refs sync``);
* the pre-commit hooks (:mod:`modelbox.validate`) run :class:`Checker` over the files being
  committed and only the invariants those files affect.

A document goes through its JSON Schema in ``schemas/`` (worded by :mod:`modelbox.explain`) and its
pydantic model; ``tests/test_schemas.py`` holds the two to one corpus. Over a whole registry
the pydantic model is the fast path (~5 µs a document against ~200 µs): a document it refuses
is then explained by the schema. Every problem reads ``FILE: JSON-PATH: what is wrong; how
to fix it`` (``(document)``, ``(folder)`` or ``(file)`` where no JSON path applies).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from modelbox import layout
from modelbox.errors import InvalidValueError, ManifestError, ModelboxError
from modelbox.explain import NotJSONError, jpath, load, schema_messages
from modelbox.names import RESERVED_TAGS, fold, parse_model
from modelbox.registry import Registry, ref_collisions

if TYPE_CHECKING:
    from collections.abc import Mapping

    from modelbox.refs import CommitRecord, Snapshot
    from modelbox.verdicts import Verdicts

__all__ = [
    "Checker",
    "Files",
    "Location",
    "Problem",
    "check",
    "check_document",
    "check_pushed_refs",
    "check_range",
    "locate",
    "outside_moves",
]


@dataclass(frozen=True)
class Problem:
    """One broken rule, named by file (or folder, or ref).

    ``fixable`` problems are repaired without a commit (tag refs are derived data:
    ``modelbox check --fix``); a hook reports them as warnings, refs are not committed.
    """

    path: str
    message: str
    fixable: bool = False
    warning: bool = False  # reported, but `check` still passes (unless --strict)

    def __str__(self) -> str:
        return f"{'warning: ' if self.warning else ''}{self.path}: {self.message}"


# -- where documents live --------------------------------------------------------------------
@dataclass(frozen=True)
class _Tree:
    """A top-level folder of objects with children: models own versions, experiments own
    checkpoints. Both keep metrics, events and artifact pointers beside any object."""

    root: str
    kind: str
    file: str
    children: str
    child_kind: str
    child_file: str
    child_names: tuple[str, str]  # the child manifest's fields naming its parent and itself


_TREES = {
    tree.root: tree for tree in (
        _Tree(layout.MODELS, "model", layout.MODEL_FILE, layout.VERSIONS_DIR, "version",
              layout.VERSION_FILE, ("model", "version")),
        _Tree(layout.EXPERIMENTS, "experiment", layout.EXPERIMENT_FILE, layout.CHECKPOINTS_DIR,
              "checkpoint", layout.CHECKPOINT_FILE, ("experiment", "checkpoint")),
    )
}
_BESIDE_ANY = {layout.METRICS_FILE: "metrics", layout.EVENTS_FILE: "events"}
#: Document kind -> its pydantic model in :mod:`modelbox.manifests` (schema: <kind>.schema.json)
KINDS = {
    "registry": "RegistrySettings", "model": "ModelManifest", "version": "VersionManifest",
    "tags": "TagMap", "metrics": "MetricSeries", "events": "EventLog",
    "pointer": "ArtifactPointer", "directory": "DirectoryManifest",
    "experiment": "ExperimentManifest", "checkpoint": "CheckpointManifest",
    "policy": "Policy", "namespace": "NamespaceManifest",
}
TREE_ROOTS = tuple(_TREES)


@dataclass(frozen=True)
class Location:
    """What a registry path holds: a document ``kind`` (None: no document belongs there),
    the tree it is in, the object folder that owns it and the child (version) it is in."""

    kind: str | None
    tree: str | None = None
    owner: str | None = None  # models/<namespace...>/<name>
    child: str | None = None

    @property
    def name(self) -> str:
        """The owner's full name (``ai/vision/yolo``)."""
        return (self.owner or "")[len(self.tree or "") + 1 :]


def _names(tree: _Tree, child: bool) -> dict[str, str]:
    """File name -> document kind, in an object folder (or, ``child``, in a child's)."""
    names = {tree.child_file: tree.child_kind} if child else {tree.file: tree.kind}
    if tree.kind == "model" and not child:
        names[layout.TAGS_FILE] = "tags"
    if not child:  # a model's policy, or an experiment's (promotion, checkpoint retention)
        names[layout.POLICY_FILE] = "policy"
    return {**names, **_BESIDE_ANY}


_OWNER_NAMES = {root: _names(tree, False) for root, tree in _TREES.items()}
_CHILD_NAMES = {root: _names(tree, True) for root, tree in _TREES.items()}


def locate(path: str) -> Location:
    """Classify a registry path by the layout (format 1, see :mod:`modelbox.layout`)."""
    if path == layout.SETTINGS:
        return Location("registry")
    parts = path.split("/")
    tree = _TREES.get(parts[0])
    if tree is None or len(parts) < 2:
        return Location(None)
    owned = next((i for i, part in enumerate(parts) if part.startswith("_")), None)
    if owned is None:
        return Location(None, tree.root)  # a file among namespace and object folders
    if tree.kind == "model" and owned >= 2 and parts[owned:] == [layout.NAMESPACE_FILE]:
        return Location("namespace", tree.root)  # a namespace's, not a model's: no owner
    owner, rest, child = "/".join(parts[:owned]), parts[owned:], None
    names = _OWNER_NAMES[tree.root]
    if rest[0] == tree.children and len(rest) >= 2:
        child, rest = rest[1], rest[2:]
        names = _CHILD_NAMES[tree.root]
    kind = names.get(rest[0]) if len(rest) == 1 else None
    if len(rest) >= 2 and rest[0] == layout.ARTIFACTS_DIR and path.endswith(".json"):
        kind = "pointer"
    return Location(kind, tree.root, owner, child)


# -- one document ----------------------------------------------------------------------------
def not_json(path: str, data: bytes, exc: Exception) -> Problem:
    if getattr(exc, "limit", False):  # within JSON, beyond what a document may be
        return Problem(path, f"(document): {exc} (docs/design.md, Limits); fix or restore "
                             "the file with git")
    conflict = b"\n<<<<<<< " in b"\n" + data
    hint = " — a merge conflict left in the file" if conflict else ""
    return Problem(path, f"(document): not valid JSON{hint} ({exc}); fix the syntax or "
                         "restore the file with git")


@cache
def _model(kind: str) -> Any:
    from modelbox import manifests

    return getattr(manifests, KINDS[kind])


def check_document(
    path: str, data: bytes, kind: str | None = None, *, schema: bool = True
) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Check one document: JSON syntax, its schema and pydantic model, its place.

    ``kind`` defaults to what :func:`locate` says ``path`` holds. With ``schema=False`` the
    pydantic model decides alone unless it refuses; the schema then explains why. Returns
    the document (None unless it is valid JSON that fits its schema) and the problems.
    """
    loc = locate(path)
    return _check_document(path, data, kind or loc.kind, loc, schema=schema)


def _check_document(
    path: str, data: bytes, kind: str | None, loc: Location, *, schema: bool
) -> tuple[dict[str, Any] | None, list[Problem]]:
    if kind not in KINDS:
        raise ValueError(f"{path} holds no modelbox document")
    try:
        document, repeated = load(data, kind)
    except NotJSONError as exc:
        return None, [not_json(path, data, exc)]
    problems = [Problem(path, f"{jpath(where)}: the key appears twice (a merge gone wrong?); "
                              "keep the right one") for where in repeated]
    refusal = None
    try:
        _model(kind).model_validate_json(data)
    except ValueError:  # pydantic's ValidationError; parse() words it the usual way
        from modelbox.manifests import parse

        try:
            parse(_model(kind), path, data)
        except ManifestError as exc:
            refusal = exc.problem
    if schema or refusal is not None:
        explained = _schema_problems(kind, path, document)
        problems += explained
        if explained or refusal is not None:
            if refusal is not None and not explained:
                problems.append(Problem(path, refusal))
            return None, problems
    if isinstance(document, dict):
        problems += _placement(kind, path, document, loc)
    return document, problems


def _schema_problems(kind: str, path: str, document: Any) -> list[Problem]:
    return [Problem(path, message) for message in schema_messages(kind, document)]


# -- rules of one document's place -----------------------------------------------------------
def claimed_path(kind: str, doc: dict[str, Any]) -> str | None:
    """Where a model, version, experiment or checkpoint manifest says it belongs."""
    for tree in _TREES.values():
        if kind == tree.kind:
            return f"{tree.root}/{doc['namespace']}/{doc['name']}/{tree.file}"
        if kind == tree.child_kind:
            parent, me = (doc[f] for f in tree.child_names)
            return f"{tree.root}/{parent}/{tree.children}/{me}/{tree.child_file}"
    return None


def _placement(kind: str, path: str, doc: dict[str, Any], loc: Location) -> list[Problem]:
    if kind == "registry" and isinstance(doc.get("store"), str):
        from modelbox.objects.schemes import check_store_url  # the objects package is heavy

        try:  # any scheme but a local or chained one: the clone's git config may allow it
            check_store_url(doc["store"], "store", None)
        except InvalidValueError as exc:
            return [Problem(path, f"{exc}; fix the file (credentials belong in the "
                                  "environment) or restore it with git")]
    if kind == "namespace":
        folder = path[len(layout.MODELS) + 1 : -len(layout.NAMESPACE_FILE) - 1]
        if doc["namespace"] != folder:
            return [Problem(path, f"namespace: names {doc['namespace']} but sits in the folder "
                                  f"of {folder}; fix the field or move the file")]
        return []
    if loc.tree is None:
        return []
    tree = _TREES[loc.tree]
    if kind == tree.kind and "/" not in loc.name:
        return [Problem(path, f"(document): a {kind} needs a namespace folder "
                              f"({tree.root}/NAMESPACE/NAME); move the folder")]
    if kind == tree.kind and claimed_path(kind, doc) != path:
        claimed = f"{doc['namespace']}/{doc['name']}"
        return [Problem(path, f"namespace/name: names {kind} {claimed} but sits at "
                              f"{loc.name}; move the folder or fix namespace/name")]
    if kind == tree.child_kind and claimed_path(kind, doc) != path:
        parent, me = (doc[f] for f in tree.child_names)
        return [Problem(path, f"{'/'.join(tree.child_names)}: names {parent}@{me} but sits at "
                              f"{loc.name}@{loc.child}; fix the fields or move the folder")]
    if kind == "pointer":
        return [Problem(path, message) for message in _pointer_rules(path, doc)]
    return []


def _never_opened(uri: str) -> bool:
    from modelbox.objects.schemes import NEVER, scheme_of  # the objects package is heavy

    return "::" in uri or scheme_of(uri) in NEVER


def _pointer_rules(path: str, doc: dict[str, Any]) -> list[str]:
    root = path.split(f"/{layout.ARTIFACTS_DIR}/", 1)[0] + f"/{layout.ARTIFACTS_DIR}/"
    expected = path[len(root) : -len(".json")]
    sha, uri = doc.get("sha256"), doc.get("uri")
    out = []
    if doc["path"] != expected:
        out.append(f"path: says {doc['path']!r} but the file sits at {expected!r}; "
                   "rename one of them")
    if (sha is None) == (uri is None):
        out.append("sha256/uri: a pointer needs exactly one of sha256 (stored) or uri "
                   "(tracked); write it again with `modelbox artifact add` or `track`")
    if uri is not None and "://" not in uri:
        out.append(f"uri: {uri!r} is not an absolute URI (s3://, gs://, https://...); "
                   "track it again with `modelbox artifact track`")
    elif uri is not None and _never_opened(uri):
        out.append(f"uri: {uri!r} names a local or chained protocol, which modelbox never "
                   "opens; remove the pointer or track a remote URL")
    if doc.get("etag") is not None and uri is None:
        out.append("etag: only a tracked artifact (uri) has an ETag; remove it")
    if bool(doc.get("directory")) != (doc.get("files") is not None):
        out.append("directory/files: a directory pointer has a file count, and only a "
                   "directory pointer; add the folder again with `modelbox artifact add`")
    elif doc.get("directory") and sha is None:
        out.append("sha256: a directory pointer names its directory manifest by sha256; "
                   "add the folder again with `modelbox artifact add`")
    return out


def _stray(path: str, loc: Location) -> str:
    """Why a file that is no modelbox document does not belong where it is."""
    if f"/{layout.ARTIFACTS_DIR}/" in path:
        return ("(file): not a pointer file; commit a pointer (`modelbox artifact add`) "
                "instead of the artifact itself")
    if loc.child is not None:
        return ("(file): unknown entry in a version folder; remove it (artifacts go to the "
                "store with `modelbox artifact add`)")
    if loc.owner is not None:
        return "(file): unknown modelbox entry; remove it"
    return (f"(file): not a modelbox document: only manifests and pointers belong under "
            f"{loc.tree}/; store artifacts with `modelbox artifact add`, keep other files "
            "elsewhere")


# -- the invariants --------------------------------------------------------------------------
class Files(Protocol):
    """A read-only tree of files: a commit's Snapshot, or the work tree as staged."""

    def read(self, path: str) -> bytes | None: ...

    def listdir(self, path: str) -> list[tuple[str, bool]]: ...


_UNREAD = object()
_BOM = b"\xef\xbb\xbf"


class Checker:
    """Checks given files and the invariants they take part in, reading each file once.

    After each file (schema, place), :meth:`run` checks what those files affect: the child
    folder has its manifest, the object folder its manifest, every tag (of a changed tag
    map, or naming a changed version) names an existing live version. Files read only for
    context (the version a tag names) are not themselves reported on, so a hook speaks
    about what is being committed. ``collisions`` adds the tag-ref collision rule from the
    manifests (the committed tree checks it on the refs instead).
    """

    def __init__(self, files: Files, *, schema: bool = True, collisions: bool = False,
                 verdicts: Verdicts | None = None) -> None:
        self.files, self.schema, self.collisions = files, schema, collisions
        self.verdicts = verdicts  # documents found clean before (modelbox.verdicts)
        from modelbox.refs.listing import ListedSnapshot

        # Blob ids come with a listed tree; other files are hashed (modelbox.refs.blob_sha).
        self._listed = files if isinstance(files, ListedSnapshot) else None
        self.problems: list[Problem] = []
        self.tag_maps: set[str] = set()  # model folders whose _tags.json was checked
        self._docs: dict[str, Any] = {}
        self._bytes: dict[str, bytes | None] = {}
        self._folders_seen: set[str] = set()  # folders checked for names differing by case
        self._listings: dict[str, list[tuple[str, bool]]] = {}
        self._located: dict[str, Location] = {}

    def locate(self, path: str) -> Location:
        """:func:`locate`, once per path."""
        loc = self._located.get(path)
        if loc is None:
            loc = self._located[path] = locate(path)
        return loc

    def read(self, path: str) -> bytes | None:
        if path not in self._bytes:
            self._bytes[path] = self.files.read(path)
        return self._bytes[path]

    def peek(self, path: str) -> dict[str, Any] | None:
        """The document at ``path`` for context, not reported on (None: absent or unusable)."""
        doc = self._docs.get(path, _UNREAD)
        if doc is _UNREAD:
            data = self.read(path)
            try:
                doc = load(data, self.locate(path).kind or "")[0] if data is not None else None
            except NotJSONError:
                doc = None
            self._docs[path] = doc
        return doc if isinstance(doc, dict) else None

    def _listdir(self, folder: str) -> list[tuple[str, bool]]:
        """``files.listdir``, once per folder (the case rule reads what all_paths read)."""
        entries = self._listings.get(folder)
        if entries is None:
            entries = self._listings[folder] = self.files.listdir(folder)
        return entries

    def all_paths(self) -> list[str]:
        """The settings file and every file of the object trees, in a stable order."""
        out, stack = [layout.SETTINGS], sorted(TREE_ROOTS, reverse=True)
        while stack:
            folder = stack.pop()
            entries = self._listdir(folder)
            out.extend(f"{folder}/{name}" for name, is_dir in entries if not is_dir)
            stack.extend(f"{folder}/{name}" for name, is_dir in reversed(entries) if is_dir)
        return out

    def run(self, paths: Iterable[str], deleted: Iterable[str] = ()) -> list[Problem]:
        """Check ``paths`` (a missing one counts as deleted) and what they affect."""
        paths = list(paths)
        owners: set[tuple[str, str]] = set()
        children: set[tuple[str, str, str]] = set()
        changed_versions: dict[str, set[str]] = {}
        for path in [*paths, *deleted]:
            loc = self.locate(path)
            exists = self.read(path) is not None
            if loc.kind == "registry":
                self._check_settings(exists)
            elif exists:
                self._check_file(path, loc)
            if loc.tree is None or loc.owner is None:
                continue
            owners.add((loc.tree, loc.owner))
            if loc.child is not None:
                children.add((loc.tree, loc.owner, loc.child))
                if loc.kind == "version" or (loc.tree == layout.MODELS and not exists):
                    changed_versions.setdefault(loc.owner, set()).add(loc.child)
            if loc.kind == "tags" and exists:
                self.tag_maps.add(loc.owner)
        if owners and self.read(layout.SETTINGS) is None:
            self._check_settings(False)
        for tree, owner, child in sorted(children):
            self._check_child_folder(_TREES[tree], owner, child)
        for tree, owner in sorted(owners):
            self._check_owner_folder(_TREES[tree], owner)
        for owner in sorted(self.tag_maps | changed_versions.keys()):
            self._check_tags(owner, None if owner in self.tag_maps else changed_versions[owner])
        self._check_versions(changed_versions, [*paths, *deleted])
        self._check_case(paths)
        return list(dict.fromkeys(self.problems))

    def _check_case(self, paths: list[str]) -> None:
        """Names that differ only in case (or Unicode normalization) side by side, in any
        folder on these paths or among the tags of a tag map among them. A macOS or Windows
        clone holds one of each pair (and one ref); registries from before the rule, or a
        plain git commit, may have them."""
        for path in paths:
            self._check_case_of(path)

    def _check_case_of(self, path: str) -> None:
        parts = path.split("/")
        if parts[0] not in _TREES:
            return
        # A folder is marked seen with all its parents: a seen one leaves nothing to do.
        parent_seen = path.rpartition("/")[0] in self._folders_seen
        for depth in range(1, 0 if parent_seen else len(parts)):
            folder = "/".join(parts[:depth])
            if folder not in self._folders_seen:
                self._folders_seen.add(folder)
                names = [name for name, _ in self._listdir(folder)]
                self.problems += _twins(folder, names, "(folder)", "entries")
        if parts[-1] == layout.TAGS_FILE:
            tags = (self.peek(path) or {}).get("tags")
            if isinstance(tags, dict):
                self.problems += _twins(path, list(tags), "tags", "tags")

    def _check_link(self, path: str, loc: Location, doc: dict[str, Any]) -> None:
        """A collection's versions are links, only a collection's, to versions that exist."""
        source = doc.get("link")
        collection = (self.peek(f"{loc.owner}/{layout.MODEL_FILE}") or {}).get("collection")
        if source is None:
            if collection is True:
                self.problems.append(Problem(path, "link: a version of a collection must link "
                                             "a version; `modelbox link SOURCE "
                                             f"{loc.name}` instead"))
            return
        if collection is not True:
            self.problems.append(Problem(path, f"link: {loc.name} is not a collection, so its "
                                         "versions cannot be links; remove the field or "
                                         "restore the file with git"))
        problem = self._link_problem(f"{loc.name}@{loc.child}", source)
        if problem:
            self.problems.append(Problem(path, f"link: {problem}"))

    def _link_problem(self, start: str, source: str) -> str | None:
        seen, current = {start}, source
        while True:
            model, _, version = current.rpartition("@")
            vpath = f"{layout.MODELS}/{model}/{layout.VERSIONS_DIR}/{version}/{layout.VERSION_FILE}"
            if self.read(vpath) is None:
                return (f"{current} does not exist; restore it or `modelbox unlink {start}`"
                        if current == source else
                        f"the chain of links through {source} reaches {current}, which does "
                        "not exist; restore it or unlink")
            if current in seen:
                return f"the links through {source} loop back to {current}; unlink one of them"
            seen.add(current)
            following = (self.peek(vpath) or {}).get("link")
            if not isinstance(following, str):
                return None
            current = following

    def _check_links_into(self, gone: set[str]) -> None:
        from modelbox.collections import iter_links

        for link, source, _ in iter_links(self.files):
            if source in gone:
                model, _, version = link.rpartition("@")
                path = f"{layout.MODELS}/{model}/{layout.VERSIONS_DIR}/{version}/" \
                       f"{layout.VERSION_FILE}"
                self.problems.append(Problem(path, f"link: {source} does not exist; restore "
                                             f"it or `modelbox unlink {link}`"))

    def _check_versions(self, changed: dict[str, set[str]], paths: list[str]) -> None:
        gone = {f"{owner[len(layout.MODELS) + 1 :]}@{v}" for owner, versions in
                changed.items() for v in versions
                if self.read(f"{owner}/{layout.VERSIONS_DIR}/{v}/{layout.VERSION_FILE}") is None}
        if gone:  # a deleted version some link still names
            self._check_links_into(gone)
        for folder in _version_folders(paths, self.locate):
            self._check_release(folder)

    def _check_release(self, folder: str) -> None:
        """A released version's pointers still hash to the digest its release recorded."""
        from modelbox import releases

        path = f"{folder}/{layout.VERSION_FILE}"
        doc = self.peek(path)
        # A document that is no valid manifest may still hold a release record to honour.
        record = doc.get("released") if doc is not None else releases.release_of(self.read(path))
        recorded = record.get("digest") if isinstance(record, dict) else None
        doc = doc or {}
        if isinstance(doc.get("link"), str) and isinstance(doc.get("digest"), str):
            self._check_link_digest(path, doc["link"], doc["digest"])
        if not isinstance(recorded, str):
            return
        actual = releases.digest_of_pointers(self.files, folder)
        if actual != recorded:
            self.problems.append(Problem(path, f"released: its artifacts no longer match the "
                                         f"released digest (recorded {recorded}, now {actual}); "
                                         "restore its _artifacts with git, or make a new "
                                         "version with `modelbox version create --from`"))

    def _check_link_digest(self, path: str, source: str, recorded: str) -> None:
        """A link's source (at the end of its chain) still holds the set the link pinned."""
        from modelbox import releases

        current = source
        for _ in range(64):  # loops and dangling links are _check_link's to report
            model, _, version = current.rpartition("@")
            folder = f"{layout.MODELS}/{model}/{layout.VERSIONS_DIR}/{version}"
            following = (self.peek(f"{folder}/{layout.VERSION_FILE}") or {}).get("link")
            if self.read(f"{folder}/{layout.VERSION_FILE}") is None:
                return
            if not isinstance(following, str):
                actual = releases.digest_of_pointers(self.files, folder)
                if actual != recorded:
                    self.problems.append(Problem(path, f"digest: {current} no longer holds "
                                                 f"the artifacts this link pinned (recorded "
                                                 f"{recorded}, now {actual}); restore them "
                                                 "with git, or unlink and link a new version"))
                return
            current = following

    def _check_settings(self, exists: bool) -> None:
        if exists:
            self._check_file(layout.SETTINGS, Location("registry"))
        else:
            self.problems.append(Problem(layout.SETTINGS, "(document): missing; restore it "
                                         "with git (every registry has one: `modelbox init`)"))

    def _check_file(self, path: str, loc: Location) -> None:
        data = self.read(path)
        assert data is not None
        if loc.kind is None:
            folder = (f"{loc.owner}/{_TREES[loc.tree].children}/{loc.child}"
                      if loc.tree is not None and loc.child is not None else None)
            if path != folder:  # a file where a version folder belongs: the folder rule says so
                self.problems.append(Problem(path, _stray(path, loc)))
            return
        doc = self._judged_clean(path, data)
        placed = doc is not None  # clean before: it sits where it says (its placement rule)
        if doc is None:
            doc, problems = _check_document(path, data, loc.kind, loc, schema=self.schema)
            self.problems += problems
            if doc is not None and not problems and self.verdicts is not None:
                self.verdicts.add(path, self._blob_id(path, data), schema=self.schema)
        self._docs[path] = doc
        if doc is None:
            return
        other = None if placed else claimed_path(loc.kind, doc)
        if other is not None and other != path and self.read(other) is not None:
            self.problems.append(Problem(path, f"(document): {other} claims the same identity; "
                                         "two manifests cannot name one object — remove or "
                                         "fix one of them"))
        if loc.kind in ("model", "experiment"):
            self._check_name_clash(loc)
        if loc.kind == "version" and loc.tree == layout.MODELS:
            self._check_link(path, loc, doc)
        if loc.kind in ("model", "tags") and self.collisions:
            self._check_collisions(loc.owner or "")

    def _blob_id(self, path: str, data: bytes) -> str:
        """The Git id of ``data``: listed with the tree, else hashed here."""
        from modelbox.refs import blob_sha

        known = self._listed.blob_id(path) if self._listed is not None else None
        return known or blob_sha(data)

    def _judged_clean(self, path: str, data: bytes) -> dict[str, Any] | None:
        """The document at ``path`` if these bytes were found clean there before (it is
        then parsed plainly: it is strict JSON without a repeated key), else None."""
        if self.verdicts is None or not self.verdicts.clean(
            path, self._blob_id(path, data), schema=self.schema
        ):
            return None
        document = json.loads(data[len(_BOM):] if data.startswith(_BOM) else data)
        return document if isinstance(document, dict) else None

    def _check_name_clash(self, loc: Location) -> None:
        """One name is either a model or an experiment, never both."""
        model = f"{layout.MODELS}/{loc.name}/{layout.MODEL_FILE}"
        experiment = f"{layout.EXPERIMENTS}/{loc.name}/{layout.EXPERIMENT_FILE}"
        if self.read(model) is not None and self.read(experiment) is not None:
            self.problems.append(Problem(experiment, f"(document): {model} exists too: a name "
                                         "is either a model or an experiment; rename one"))

    def _check_child_folder(self, tree: _Tree, owner: str, child: str) -> None:
        folder = f"{owner}/{tree.children}/{child}"
        if self.read(f"{folder}/{tree.child_file}") is None and (
            self.files.listdir(folder) or self.read(folder) is not None
        ):
            self.problems.append(Problem(folder, f"(folder): a {tree.child_kind} folder without "
                                         f"{tree.child_file}; restore it with git or remove "
                                         "the folder"))

    def _check_owner_folder(self, tree: _Tree, owner: str) -> None:
        if self.read(f"{owner}/{tree.file}") is None and any(  # a namespace's is not its
            name.startswith("_") and name != layout.NAMESPACE_FILE
            for name, _ in self.files.listdir(owner)
        ):
            self.problems.append(Problem(owner, f"(folder): has modelbox files but no "
                                         f"{tree.file}; restore it with git"))

    def _check_tags(self, owner: str, only: set[str] | None) -> None:
        """Every tag (or each naming one of ``only``) names an existing, live version."""
        path = f"{owner}/{layout.TAGS_FILE}"
        tags = (self.peek(path) or {}).get("tags")
        if not isinstance(tags, dict):
            return
        model = owner[len(layout.MODELS) + 1 :]
        for tag, version in sorted(tags.items()):
            if not isinstance(version, str) or (only is not None and version not in only):
                continue
            if tag in RESERVED_TAGS:
                self.problems.append(Problem(path, f"tags.{tag}: '{tag}' is computed and cannot "
                                             f"be stored; `modelbox untag {model} {tag}`"))
            vpath = f"{owner}/{layout.VERSIONS_DIR}/{version}/{layout.VERSION_FILE}"
            if self.read(vpath) is None:
                self.problems.append(Problem(path, f"tags.{tag}: points to {version}, which does "
                                             f"not exist; `modelbox untag {model} {tag}` or "
                                             "restore the version"))
            elif (self.peek(vpath) or {}).get("archived") is True:
                self.problems.append(Problem(path, f"tags.{tag}: points to the archived version "
                                             f"{version}; move or remove the tag"))

    def _tags(self, owner: str) -> dict[str, Any]:
        tags = (self.peek(f"{owner}/{layout.TAGS_FILE}") or {}).get("tags")
        return tags if isinstance(tags, dict) else {}

    def _check_collisions(self, owner: str) -> None:
        """Tag refs Git cannot hold at once: ``a/b:x`` beside a tagged model ``a/b/x/...``."""
        parts = owner.split("/")[1:]
        if self._tags(owner):
            for i in range(2, len(parts)):
                parent = "/".join([layout.MODELS, *parts[:i]])
                if parts[i] in self._tags(parent):
                    self._collision(parent, parts[i], "/".join(parts))
        for tag in self._tags(owner):
            for nested in self._tagged_below(f"{owner}/{tag}"):
                self._collision(owner, tag, nested)

    def _collision(self, parent_dir: str, tag: str, model: str) -> None:
        parent = parent_dir[len(layout.MODELS) + 1 :]
        self.problems.append(Problem(
            f"{parent_dir}/{layout.TAGS_FILE}",
            f"tags.{tag}: the ref of {parent}:{tag} collides with the tag refs of the model "
            f"{model}: Git cannot hold both; untag {parent}:{tag} or rename the model",
        ))

    def _tagged_below(self, folder: str) -> Iterator[str]:
        stack = [folder]
        while stack:
            current = stack.pop()
            if self._tags(current):
                yield current[len(layout.MODELS) + 1 :]
            stack.extend(f"{current}/{name}" for name, is_dir in self.files.listdir(current)
                         if is_dir and not name.startswith("_"))


def reopened_releases(paths: Iterable[str], old: Callable[[str], bytes | None],
                      new: Callable[[str], bytes | None]) -> list[Problem]:
    """Version manifests among ``paths`` whose release record ``old`` had and ``new`` lost
    or changed (what only a comparison can see: a hand edit reopening a release)."""
    from modelbox import releases

    out = []
    for path in paths:
        if locate(path).kind == "version":
            problem = releases.reopened(old(path), new(path))
            if problem:
                out.append(Problem(path, problem))
    return out


def _version_folders(paths: list[str], where: Callable[[str], Location] = locate) -> list[str]:
    """The version folders whose manifest or artifacts ``paths`` touch (release digests)."""
    out = set()
    for path in paths:
        loc = where(path)
        if loc.tree == layout.MODELS and loc.child is not None and (
            loc.kind in ("version", "pointer") or f"/{layout.ARTIFACTS_DIR}/" in path
        ):
            out.add(f"{loc.owner}/{layout.VERSIONS_DIR}/{loc.child}")
    return sorted(out)


def _twins(where: str, names: list[str], at: str, what: str) -> list[Problem]:
    if len(names) < 2 or len({fold(name) for name in names}) == len(names):
        return []  # the usual case, at set speed
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(fold(name), []).append(name)
    return [
        Problem(where, f"{at}: the {what} {', '.join(sorted(group))} differ only in "
                "case: a case-insensitive file system (macOS, Windows) holds only one of "
                "them; rename all but one with `git mv` (or untag) and run `modelbox check`")
        for group in groups.values() if len(group) > 1
    ]


# -- `modelbox check` ------------------------------------------------------------------------
def check(registry: Registry, *, schema: bool = False) -> list[Problem]:
    """Every problem on the registry branch, plus tag-ref drift (``fixable``).

    ``schema=True`` runs every document through its JSON Schema too, not only those the
    pydantic models refuse (slower: ~0.2 ms a document).
    """
    from modelbox.refs.listing import listed_snapshot
    from modelbox.verdicts import Verdicts

    snap = listed_snapshot(registry.repo, registry.head())
    verdicts = Verdicts(registry.repo.git_dir)
    checker = Checker(snap, schema=schema, verdicts=verdicts)
    problems = _unsafe_paths(registry, snap)
    problems += checker.run(checker.all_paths())
    verdicts.save(only_seen=True)
    problems += _check_refs(registry, snap, checker)
    from modelbox.outside_memo import outside_warnings

    return _check_interrupted(registry) + problems + outside_warnings(registry, snap.commit)


def _check_interrupted(registry: Registry) -> list[Problem]:
    """A write cut short (a pending journal), or an index lagging the branch without one."""
    from modelbox import recovery

    fix = ("run `modelbox check --fix` (or any modelbox write) to finish it; do not commit "
           "what `git status` shows staged: it would revert the newer commits")
    problems = [
        Problem(f".git/{recovery.JOURNAL_DIR}/{kind}.json",
                f"a modelbox command was interrupted before the work tree, the index and the "
                f"tag refs followed the branch; {fix}", fixable=True)
        for kind in recovery.pending(registry.repo.git_dir)
    ]
    if not problems:
        lag = recovery.lagging(registry)
        if lag is not None:
            problems.append(Problem(
                ".git/index", f"the index and work tree still hold {(lag.old or '')[:12]}, an "
                f"older commit of the branch, not its head {lag.new[:12]}; {fix}",
                fixable=True))
    waiting, rejected = recovery.waiting_metrics(registry.repo.git_dir)
    problems += [
        Problem(f".git/{recovery.JOURNAL_DIR}/{path.name}",
                f"{count} metric point(s) logged by a process that ended are waiting here; "
                "the next modelbox write commits them", warning=True)
        for path, count in waiting
    ] + [
        Problem(f".git/{recovery.JOURNAL_DIR}/{path.name}",
                "metric points whose target was gone when they were committed; log them "
                "again where they belong, then delete the file", warning=True)
        for path in rejected
    ]
    return problems


def _unsafe_paths(registry: Registry, snap: Snapshot) -> list[Problem]:
    """Paths git would not check out (``..``, ``.git``, a symbolic link...), in a registry
    that took them before pull checked them (:mod:`modelbox.pathcheck`)."""
    from modelbox.refs import incoming
    from modelbox.refs.listing import ListedSnapshot

    if snap.commit is None:
        return []
    listed = snap.entries() if isinstance(snap, ListedSnapshot) else None
    return [Problem(path.encode("unicode_escape").decode("ascii"),
                    f"(file): may not be written ({why}); remove it from the branch with git, "
                    "then commit")
            for path, why in incoming.unsafe_paths(registry.repo, snap.commit, listed)]


def _check_refs(registry: Registry, snap: Snapshot, checker: Checker) -> list[Problem]:
    from modelbox import tagtimes

    desired: dict[str, str] = {}
    # When each tag moved (the refs' dates): one `git log` for every tag map, not one each.
    history = tagtimes.history(registry.repo, snap.commit, None) if checker.tag_maps else {}
    for owner in sorted(checker.tag_maps):
        if checker.peek(f"{owner}/{layout.MODEL_FILE}") is None:
            continue
        try:  # a broken tag map or folder name is reported above; it has no refs
            desired.update(registry.desired_refs(
                snap, parse_model(owner[len(layout.MODELS) + 1:]), history))
        except ModelboxError:
            continue
    collisions = ref_collisions(desired)
    if collisions:  # no sync can fix these: a manifest must change first
        return [
            Problem(short, f"collides with {long}: Git cannot hold both tag refs; untag "
                    f"{short} or rename the model")
            for short, long in collisions
        ]
    actual = registry.repo.refs_under(layout.TAG_REF_PREFIX)
    problems = []
    for name in sorted(desired.keys() | actual.keys()):
        if name not in actual:
            problems.append(Problem(name, "tag ref is missing", fixable=True))
        elif name not in desired:
            problems.append(Problem(name, "tag ref names no tag in the manifests", fixable=True))
        elif desired[name] != actual[name]:
            problems.append(Problem(name, "tag ref is out of date", fixable=True))
    return [
        Problem(p.path, p.message + "; run `modelbox refs sync`", fixable=True) for p in problems
    ]


# -- a range of commits: `check --since REF` and the pre-push hook --------------------------
def check_range(registry: Registry, base: str | None, head: str, *,
                schema: bool = False) -> list[Problem]:
    """The rules of :func:`check` over what ``base..head`` changes, read in ``head``'s tree.

    Every registry file the range adds, changes or deletes is checked, and the
    invariants those files take part in (as the pre-commit hook does for one commit);
    tags moved outside modelbox by the range's commits are warnings. ``base`` None (a
    new branch) checks every file. The cost follows the size of the change, not of the
    registry. Tag refs are not compared here (a branch is not the refs; see
    :func:`check_pushed_refs`).
    """
    from modelbox.refs.listing import listed_snapshot
    from modelbox.refs.remote import new_commits
    from modelbox.verdicts import Verdicts

    repo = registry.repo
    verdicts = None
    if base is None:  # every file: read in bulk, and judged once per blob
        snap = listed_snapshot(repo, head)
        verdicts = Verdicts(repo.git_dir)
    else:
        snap = repo.snapshot(head)
    checker = Checker(snap, schema=schema, collisions=True, verdicts=verdicts)
    if base is None:
        paths = checker.all_paths()
    else:
        before = repo.snapshot(base)
        changed = repo.changed_paths(before.tree, snap.tree)
        paths = [c.path for c in changed if c.path == layout.SETTINGS or locate(c.path).tree]
        checker.problems += reopened_releases(paths, before.read, snap.read)
    problems = checker.run(paths)
    if verdicts is not None:
        verdicts.save()
    commits = new_commits(repo, head, [base] if base else [])
    return problems + outside_moves(registry, registry.history.records(commits))


def check_pushed_refs(registry: Registry, commit: str | None,
                      refs: Mapping[str, str | None], models: Iterable[str] = ()
                      ) -> list[Problem]:
    """Tag refs about to be published (name -> sha, None: deleted) against the manifests
    of ``commit`` (the registry branch being pushed): each must be the ref ``refs sync``
    derives from them. A hand-moved ``refs/modelbox/tags/*`` ref would show plain-git
    readers a version the registry does not have.

    ``models`` (``ai/vision/yolo``) are those whose tags the pushed branch changed: their
    refs here must match too, or the push would leave the remote's refs behind its
    branch (a plain ``git commit`` moved a tag and no ``refs sync`` ran)."""
    repo = registry.repo
    snap = repo.snapshot(commit)
    problems = []
    repo.hold_objects()  # the tag objects are computed to compare, never written
    try:
        desired: dict[str, dict[str, str]] = {}

        def wanted(model_path: str) -> dict[str, str]:
            if model_path not in desired:
                try:
                    desired[model_path] = registry.desired_refs(snap, parse_model(model_path))
                except ModelboxError:
                    desired[model_path] = {}  # no such model: no ref belongs there
            return desired[model_path]

        fix = "run `modelbox refs sync`, then push again"
        for model_path in sorted(set(models)):
            prefix = f"{layout.TAG_REF_PREFIX}{model_path}/"
            here = {name: sha for name, sha in repo.refs_under(prefix).items()
                    if "/" not in name[len(prefix) :] and name not in refs}
            want_all = wanted(model_path)
            for name in sorted((here.keys() | want_all.keys()) - refs.keys()):
                if here.get(name) != want_all.get(name):
                    says = (_tag_says(registry, want_all[name]) if name in want_all
                            else "no such tag")
                    problems.append(Problem(name, (
                        f"tag ref is out of date: the pushed {registry.branch} says {says}, "
                        f"and the push would leave the remote's ref as it is; {fix}"),
                        fixable=True))
        for name, sha in sorted(refs.items()):
            model_path, _, _ = name[len(layout.TAG_REF_PREFIX) :].rpartition("/")
            want = wanted(model_path).get(name)
            if sha == want:
                continue
            if want is None and sha is not None:
                why = f"names {_tag_says(registry, sha)}, but {registry.branch} has no such tag"
            elif sha is None:
                why = (f"would be deleted, but {registry.branch} still has "
                       f"{_tag_says(registry, want)}")
            else:
                why = (f"names {_tag_says(registry, sha)}, but {registry.branch} says "
                       f"{_tag_says(registry, want)}")
            problems.append(Problem(name, f"tag ref {why}; {fix}", fixable=True))
    finally:
        repo.discard_pending()
    return problems


def _tag_says(registry: Registry, sha: str | None) -> str:
    """``MODEL@VERSION`` as a modelbox tag object names it."""
    try:
        found = registry.repo.tag_target(sha) if sha else None
    except ModelboxError:
        found = None
    return found[1].strip() if found else f"{(sha or '')[:10]} (not a modelbox tag object)"


# -- tags moved outside modelbox ---------------------------------------------------------------
def outside_moves(registry: Registry, records: Iterable[CommitRecord]) -> list[Problem]:
    """A warning for each tag that a commit modelbox did not write moved (a plain ``git
    commit`` of ``_tags.json``); merges whose tag changes come from their parents are not
    moves of their own. See :mod:`modelbox.outside`."""
    from modelbox.audit import OUTSIDE
    from modelbox.outside import OutsideMoves

    outside = OutsideMoves(registry.repo)
    problems = []
    for record in records:
        for event in outside.events(record):
            if not event.operation.endswith(OUTSIDE):
                continue  # a squash merge quoting the squashed commits' trailers
            model, _, tag = event.target.rpartition(":")
            problems.append(Problem(
                f"{layout.MODELS}/{model}/{layout.TAGS_FILE}",
                f"tags.{tag}: {event.before or '-'} -> {event.after or '-'} changed outside "
                f"modelbox by {event.author} in commit {event.commit[:10]} "
                f"({event.time.isoformat()}); no audit record says why (`modelbox log "
                f"{event.target}` lists it); move tags with `modelbox tag` / `untag`",
                warning=True,
            ))
    outside.save()
    return problems
