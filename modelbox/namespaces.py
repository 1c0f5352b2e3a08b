"""Namespaces (seeds 000-003): folders of models, used to organise them and to say who owns
them ("access control to the metadata of uploaded models").

A namespace exists implicitly as soon as a model lives in it or below it (SPEC); nothing
has to create it. One may carry a manifest, ``models/<namespace...>/_namespace.json``
(``schemas/namespace.schema.json``), holding its owners. Owners are inherited: a namespace
without its own takes the nearest enclosing namespace's, and ``modelbox codeowners`` turns
each namespace's own owners into one CODEOWNERS rule that nested namespaces inherit and a
model's own owner overrides. See ``docs/design.md`` (Namespaces).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelbox import collisions, layout, limits
from modelbox.audit import Change
from modelbox.errors import InvalidValueError, NamespaceNotFoundError
from modelbox.names import parse_namespace
from modelbox.owners import is_owner, parse_owners

if TYPE_CHECKING:
    from modelbox.refs import Snapshot
    from modelbox.registry import Registry

__all__ = ["MAX_OWNERS", "NamespaceInfo", "list_namespaces", "set_owners", "show"]

#: Owners one namespace may name (the manifest's schema says the same).
MAX_OWNERS = 64


@dataclass(frozen=True)
class NamespaceInfo:
    """One namespace: its own owners, the owners that apply, what lives directly in it."""

    name: str
    owners: tuple[str, ...]  # its own, from its manifest (empty: none)
    owners_from: str | None  # the namespace whose owners apply (itself, an ancestor), or None
    effective_owners: tuple[str, ...]
    models: tuple[str, ...]  # full names of the models directly in it (collections apart)
    collections: tuple[str, ...]
    versions: int  # versions of those models, archived ones included (links not counted)
    namespaces: tuple[str, ...]  # the namespaces directly below it
    manifest: bool

    def to_json(self, *, detail: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "namespace": self.name, "owners": list(self.owners),
            "owners_from": self.owners_from, "effective_owners": list(self.effective_owners),
            "manifest": self.manifest, "model_count": len(self.models),
            "collection_count": len(self.collections), "version_count": self.versions,
        }
        if detail:
            out.update(models=list(self.models), collections=list(self.collections),
                       namespaces=list(self.namespaces))
        return out


@dataclass
class _Found:
    models: list[str] = field(default_factory=list)
    collections: list[str] = field(default_factory=list)
    versions: int = 0
    manifest: bool = False


def _is_collection(snap: Snapshot, path: str) -> bool:
    """Plain ``json``, as collections.iter_links reads: a broken model counts as a model
    here (``check`` and ``model show`` report it)."""
    try:
        doc = limits.loads(snap.read(path) or b"{}", "model")
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("collection") is True


def _scan(snap: Snapshot, top: str | None) -> dict[str, _Found]:
    """What lives in each namespace at or below ``top`` (every one when None), read from
    folder listings (one manifest read per model, to tell collections apart)."""
    base = layout.MODELS if top is None else layout.namespace_dir(top)
    found: dict[str, _Found] = {}
    stack = [(base, top or "")]
    while stack:
        folder, name = stack.pop()
        entries = snap.listdir(folder)
        names = {entry for entry, _ in entries}
        if name and layout.NAMESPACE_FILE in names:
            found.setdefault(name, _Found()).manifest = True
        namespace = name.rpartition("/")[0]
        if layout.MODEL_FILE in names and namespace and folder != base:
            entry = found.setdefault(namespace, _Found())
            if _is_collection(snap, f"{folder}/{layout.MODEL_FILE}"):
                entry.collections.append(name)
            else:
                entry.models.append(name)
                entry.versions += sum(
                    1 for _, is_dir in snap.listdir(f"{folder}/{layout.VERSIONS_DIR}") if is_dir)
        stack.extend((f"{folder}/{child}", f"{name}/{child}" if name else child)
                     for child, is_dir in entries if is_dir and not child.startswith("_"))
    # A namespace holding only namespaces exists too (``ai`` above ``ai/vision``).
    for name in list(found):
        parts = name.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if top is None or parent == top or parent.startswith(f"{top}/"):
                found.setdefault(parent, _Found())
    return found


def read_owners(snap: Snapshot, namespace: str) -> tuple[str, ...]:
    """A namespace's own owners from its manifest (empty: no manifest). The manifest is read
    like every manifest (size and nesting caps, then its schema): a broken one is a
    ManifestError naming the file."""
    from modelbox.manifests import NamespaceManifest, parse

    path = layout.namespace_file(namespace)
    data = snap.read(path)
    if data is None:
        return ()
    return tuple(parse(NamespaceManifest, path, data).owners)


def _info(name: str, found: _Found, own: dict[str, tuple[str, ...]],
          children: dict[str, list[str]]) -> NamespaceInfo:
    owners_from = next((candidate for candidate in _self_and_ancestors(name)
                        if own.get(candidate)), None)
    return NamespaceInfo(
        name=name, owners=own.get(name, ()), owners_from=owners_from,
        effective_owners=own[owners_from] if owners_from else (),
        models=tuple(sorted(found.models)), collections=tuple(sorted(found.collections)),
        versions=found.versions, namespaces=tuple(sorted(children.get(name, []))),
        manifest=found.manifest,
    )


def _self_and_ancestors(name: str) -> list[str]:
    parts = name.split("/")
    return ["/".join(parts[:depth]) for depth in range(len(parts), 0, -1)]


def _children(names: Iterable[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in names:
        parent = name.rpartition("/")[0]
        if parent:
            out.setdefault(parent, []).append(name)
    return out


def list_namespaces(snap: Snapshot) -> list[NamespaceInfo]:
    """Every namespace, sorted by name: those holding a model or a manifest, and the
    namespaces above them."""
    found = _scan(snap, None)
    own = {name: read_owners(snap, name) for name, entry in found.items() if entry.manifest}
    children = _children(found)
    return [_info(name, found[name], own, children) for name in sorted(found)]


def show(snap: Snapshot, namespace: str) -> NamespaceInfo:
    """One namespace; raise NamespaceNotFoundError if nothing lives in or below it and it
    has no manifest."""
    name = parse_namespace(namespace)
    found = _scan(snap, name)
    if name not in found:
        raise NamespaceNotFoundError(name)
    own = {candidate: read_owners(snap, candidate) for candidate in _self_and_ancestors(name)}
    return _info(name, found[name], own, _children(found))


def owners_of(values: Iterable[str]) -> list[str]:
    """Owners as given (each may hold several, separated by commas), checked and written as
    CODEOWNERS writes them; raise InvalidValueError naming the first unusable one."""
    good, bad = parse_owners(",".join(values))
    if bad:
        raise InvalidValueError(
            f"owner {limits.shown(bad[0])!r} is not a user (@alice), a team (@org/team) or an "
            "email, which is what CODEOWNERS accepts; give one of those")
    good = list(dict.fromkeys(good))
    unusable = next((owner for owner in good if not is_owner(owner) or len(owner) > 320), None)
    if unusable is not None:
        raise InvalidValueError(f"owner {limits.shown(unusable)!r} is too long or malformed; "
                                "give a user (@alice), a team (@org/team) or an email")
    if len(good) > MAX_OWNERS:
        raise InvalidValueError(f"{len(good)} owners given; a namespace has at most "
                                f"{MAX_OWNERS} (name a team instead)")
    return good


def set_owners(registry: Registry, namespace: str, owners: Iterable[str]) -> list[str]:
    """Give ``namespace`` these owners (one ``namespace.owner`` commit; none if unchanged);
    no owners removes its manifest, and the namespace is implicit again. The namespace need
    not hold a model yet. Returns the owners as written."""
    from modelbox.manifests import NamespaceManifest

    name = parse_namespace(namespace)
    wanted = owners_of(owners)
    with registry.transaction() as txn:
        snap = txn.snapshot
        collisions.refuse_case_twin(snap, "namespace", layout.namespace_dir(name))
        before = list(read_owners(snap, name))
        path = layout.namespace_file(name)
        if wanted:
            txn.put(path, NamespaceManifest(namespace=name, owners=wanted))
        elif snap.read(path) is not None:
            txn.delete(path)
        shown = " ".join(wanted) or "--clear"
        txn.change = Change("namespace.owner", name, f"namespace set-owner {name} {shown}",
                            before=" ".join(before) or None, after=" ".join(wanted) or None)
    return wanted
