"""Collections: curated models whose versions are links to versions of other models.

A collection is a model whose manifest says ``"collection": true``, so it is addressed like
any model (``NS/NAME``, ``@VERSION``, ``:TAG``). Each of its versions is a link: a
``_version.json`` whose ``link`` names the source ``NS/MODEL@VERSION``, with its own
description, metadata and unique tags, and no artifacts or metrics (nothing is copied).
Links are verified when made; a link may name another link, and readers follow the chain
(:func:`follow`) with a loop guard. See ``docs/collections.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from modelbox import layout, limits
from modelbox.audit import Change, TagMove
from modelbox.errors import (
    InvalidValueError,
    NotFoundError,
    TagConflictError,
    VersionExistsError,
)
from modelbox.names import ModelName, Reference, check_segment, parse_model
from modelbox.numbering import next_version
from modelbox.registry import Registry, Transaction, json_metadata

if TYPE_CHECKING:
    from modelbox.manifests import ModelManifest, VersionManifest
    from modelbox.refs import Snapshot

__all__ = [
    "AlreadyLinkedError",
    "DanglingLinkError",
    "Files",
    "LinkLoopError",
    "create_collection",
    "display_name",
    "follow",
    "iter_links",
    "link",
    "links_in",
    "links_to",
    "unlink",
]

#: How many links a chain may have before it counts as a loop (a hand-edited registry).
MAX_CHAIN = 64


class DanglingLinkError(NotFoundError):
    """A link names a version that does not exist (deleted with ``--force``, or by hand)."""

    def __init__(self, link: str, source: str) -> None:
        self.link, self.source = link, source
        super().__init__(
            f"{link} links {source}, which does not exist; restore it or "
            f"`modelbox unlink {link}`"
        )


class LinkLoopError(InvalidValueError):
    """Following links would come back where it started."""


class AlreadyLinkedError(InvalidValueError):
    """The version is linked into that collection already (one link per source)."""

    def __init__(self, origin: str, existing: str) -> None:
        self.origin, self.existing = origin, existing
        super().__init__(
            f"{origin} is linked into {existing.rpartition('@')[0]} already, as {existing}; "
            f"tag that link, or `modelbox unlink {existing}` first"
        )


def display_name(value: str) -> str:
    """A collection's display name as given, checked where it enters: printable text
    (spaces allowed), no control characters, at most 200 characters."""
    from modelbox.manifests import DISPLAY_NAME_MAX

    if len(value) > DISPLAY_NAME_MAX:
        raise InvalidValueError(f"display name {limits.shown(value)!r} has {len(value)} "
                                f"characters; at most {DISPLAY_NAME_MAX}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise InvalidValueError(f"display name {value!r} holds a control character (a line "
                                "break, a tab...); use plain text")
    return value


def create_collection(
    registry: Registry, name: ModelName, *, owner: str = "", description: str = "",
    metadata: dict[str, Any] | None = None, display: str = "",
) -> ModelManifest:
    """Create an empty collection (one ``collection.create`` commit); ``display`` is its
    name for people ("MNIST Grayscale 28x28"), beside the ref-safe ``name``."""
    return registry.create_model(
        name, owner=owner, description=description, metadata=metadata, collection=True,
        display_name=display_name(display),
    )


def _read_version(snap: Snapshot, model: ModelName, version: str) -> dict[str, Any] | None:
    data = snap.read(layout.version_file(model, version))
    if data is None:
        return None
    try:
        doc = limits.loads(data, "version")
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def follow(snap: Snapshot, model: ModelName, version: str) -> list[tuple[ModelName, str]]:
    """The chain from ``model@version`` through its links to the version that is no link.

    The first entry is the start, the last the source holding the artifacts. Raises
    :class:`DanglingLinkError` if a link names a missing version and :class:`LinkLoopError`
    if the chain comes back on itself.
    """
    chain = [(model, version)]
    seen = {f"{model}@{version}"}
    while True:
        if len(chain) > 1 and is_checkpoint(snap, *chain[-1]):
            return chain  # a link to an experiment's checkpoint: it holds the artifacts
        doc = _read_version(snap, *chain[-1])
        if doc is None:
            if len(chain) == 1:
                raise NotFoundError(f"version {model}@{version} does not exist")
            raise DanglingLinkError(_name(*chain[-2]), _name(*chain[-1]))
        source = doc.get("link")
        if not isinstance(source, str):
            return chain
        if source in seen or len(chain) > MAX_CHAIN:
            raise LinkLoopError(
                f"{model}@{version}: its links loop back to {source}; unlink one of them"
            )
        seen.add(source)
        head, _, ver = source.rpartition("@")
        chain.append((parse_model(head), ver))


def is_checkpoint(snap: Files, model: ModelName, version: str) -> bool:
    """Whether ``model@version`` names an experiment's checkpoint (no model of that name)."""
    return (snap.read(layout.model_file(model)) is None
            and snap.read(layout.checkpoint_file(model, version)) is not None)


def source_dir(snap: Files, model: ModelName, version: str) -> str:
    """The folder holding the artifacts of the end of a chain (:func:`follow`): a version's,
    or a linked checkpoint's."""
    if is_checkpoint(snap, model, version):
        return layout.checkpoint_dir(model, version)
    return layout.version_dir(model, version)


def _name(model: ModelName, version: str) -> str:
    return f"{model}@{version}"


class Files(Protocol):
    """A tree of files: a commit's Snapshot, or the files a pre-commit hook sees."""

    def read(self, path: str) -> bytes | None: ...

    def listdir(self, path: str) -> list[tuple[str, bool]]: ...


def _model_files(files: Files) -> Iterator[str]:
    stack = [layout.MODELS]
    while stack:
        folder = stack.pop()
        for name, is_dir in files.listdir(folder):
            if is_dir and not name.startswith("_"):
                stack.append(f"{folder}/{name}")
            elif name == layout.MODEL_FILE:
                yield f"{folder}/{name}"


def iter_links(files: Files) -> Iterator[tuple[str, str, bool]]:
    """Every link: ``(COLLECTION@VERSION, source, archived)``. Plain ``json``: a broken
    document is skipped here and reported by ``modelbox check``."""
    snap = files
    for path in _model_files(files):
        try:
            if limits.loads(snap.read(path) or b"{}", "model").get("collection") is not True:
                continue
        except (ValueError, AttributeError):
            continue
        folder = path.rsplit("/", 1)[0]
        collection = folder[len(layout.MODELS) + 1 :]
        for name, is_dir in snap.listdir(f"{folder}/{layout.VERSIONS_DIR}"):
            data = snap.read(f"{folder}/{layout.VERSIONS_DIR}/{name}/{layout.VERSION_FILE}")
            try:
                doc = limits.loads(data or b"{}", "version")
                source = doc.get("link")
            except (ValueError, AttributeError):
                continue
            if is_dir and isinstance(source, str):
                yield f"{collection}@{name}", source, doc.get("archived") is True


def links_to(snap: Snapshot, target: str) -> list[str]:
    """The links (``COLLECTION@VERSION``) whose source is ``target`` (``MODEL@VERSION``)."""
    return sorted(link for link, source, _ in iter_links(snap) if source == target)


def links_in(snap: Snapshot, collection: ModelName) -> dict[str, str]:
    """The links of one collection: version -> the source it names (archived ones too)."""
    out = {}
    for name, is_dir in snap.listdir(layout.versions_dir(collection)):
        doc = _read_version(snap, collection, name) if is_dir else None
        if doc is not None and isinstance(doc.get("link"), str):
            out[name] = doc["link"]
    return out


def link(
    registry: Registry, source: Reference, collection: ModelName, *,
    version: str | None = None, tags: list[str] | None = None, description: str = "",
    metadata: dict[str, Any] | None = None,
) -> VersionManifest:
    """Link the version ``source`` names into ``collection`` as a new version (one commit).

    ``source`` is ``MODEL@VERSION`` or ``MODEL:TAG`` (resolved to the version it names now),
    or an experiment's checkpoint (``EXP@CKPT``, ``EXP:latest``, ``EXP:best``).
    Raises if the source is missing or archived, the target is no collection, the link would
    make a loop, the source is linked there already (:class:`AlreadyLinkedError`), the
    version exists, or a tag is taken (:class:`TagConflictError`).
    """
    from modelbox.manifests import VersionManifest, now
    from modelbox.registry import _check_tag
    from modelbox.resolver import need_version, resolve

    need_version(source)
    if version is not None:
        check_segment("version", version)
    for tag in tags or []:
        _check_tag(tag)
    with registry.transaction() as txn:
        snap = txn.snapshot
        target = registry.get_model(collection)
        if not target.collection:
            raise InvalidValueError(
                f"{collection} is not a collection; create one with "
                f"`modelbox collection create NAME` and link into it"
            )
        found = resolve(snap, source, version_needed=True)
        resolved = found.version
        assert resolved is not None  # version_needed
        origin = f"{source.model}@{resolved}"
        if found.experiment:
            return _link_checkpoint(registry, txn, found.model, resolved, collection,
                                    version=version, tags=tags, description=description,
                                    metadata=metadata)
        chain = follow(snap, source.model, resolved)
        if any(model == collection for model, _ in chain):
            raise LinkLoopError(
                f"cannot link {origin} into {collection}: "
                + ("it is a version of that collection" if source.model == collection
                   else "its links lead back into that collection")
            )
        manifest = registry.get_version(source.model, resolved)
        if manifest.archived:
            raise InvalidValueError(f"{origin} is archived; restore it before linking it")
        for existing, linked in sorted(links_in(snap, collection).items()):
            if linked == origin:  # a second link would be a silent duplicate
                raise AlreadyLinkedError(origin, f"{collection}@{existing}")
        name = version or next_version(snap, collection)
        if snap.is_dir(layout.version_dir(collection, name)):
            raise VersionExistsError(str(collection), name)
        # The first link releases the version holding the artifacts (its set is frozen
        # from now on); the link records the digest of the set it names.
        holder, held = chain[-1]
        release = registry.release_in(txn, holder, held, f"link {collection}@{name}",
                                      empty=True)
        created = VersionManifest(
            model=str(collection), version=name, name=manifest.name,
            description=description, framework=manifest.framework,
            metadata=json_metadata(metadata), link=origin, created_at=now(),
            digest=release.digest if release is not None else None,
        )
        txn.put(layout.version_file(collection, name), created)
        txn.change = Change("collection.link", f"{collection}@{name}",
                            f"link {origin} into {collection}@{name}", after=origin)
        _tag_new_link(registry, txn, collection, name, tags or [])
    return created


def _link_checkpoint(
    registry: Registry, txn: Transaction, experiment: ModelName, checkpoint: str,
    collection: ModelName, *, version: str | None, tags: list[str] | None,
    description: str, metadata: dict[str, Any] | None,
) -> VersionManifest:
    """Stage a link to ``experiment@checkpoint`` (see :func:`link`). A checkpoint is not
    released (frozen) by a link; the link records the digest of its artifact set, so a
    later change of that set fails every read through the link (as a hand edit of a
    released version does)."""
    from modelbox import releases
    from modelbox.manifests import CheckpointManifest, VersionManifest, now, parse

    snap = txn.snapshot
    origin = f"{experiment}@{checkpoint}"
    path = layout.checkpoint_file(experiment, checkpoint)
    source = parse(CheckpointManifest, path, snap.read(path) or b"")
    if source.archived:
        raise InvalidValueError(f"{origin} is archived; link a checkpoint that is not")
    for existing, linked in sorted(links_in(snap, collection).items()):
        if linked == origin:
            raise AlreadyLinkedError(origin, f"{collection}@{existing}")
    entries = releases.pointer_entries(snap, layout.checkpoint_dir(experiment, checkpoint))
    if not entries:
        raise InvalidValueError(f"{origin} has no artifacts; add them before linking it")
    name = version or next_version(snap, collection)
    if snap.is_dir(layout.version_dir(collection, name)):
        raise VersionExistsError(str(collection), name)
    created = VersionManifest(
        model=str(collection), version=name, name=experiment.name, description=description,
        metadata=json_metadata(metadata), link=origin, created_at=now(),
        digest=releases.digest(entries),
    )
    txn.put(layout.version_file(collection, name), created)
    txn.change = Change("collection.link", f"{collection}@{name}",
                        f"link {origin} into {collection}@{name}", after=origin)
    _tag_new_link(registry, txn, collection, name, tags or [])
    return created


def _tag_new_link(registry: Registry, txn: Transaction, collection: ModelName, name: str,
                  tags: list[str]) -> None:
    """Stage ``tags`` on the new link ``collection@name`` (each must be free)."""
    if not tags:
        return
    assert txn.change is not None
    current = registry.tags_in(txn.snapshot, collection)
    for tag in dict.fromkeys(tags):
        if tag in current:
            raise TagConflictError(str(collection), tag, current[tag])
        registry._check_tag_collision(txn.snapshot, collection, tag)
        current[tag] = name
        txn.change.tag_moves.append(TagMove(f"{collection}:{tag}", None, name))
    registry.put_tags(txn, collection, current)


def unlink(registry: Registry, ref: Reference, *, force: bool = False) -> str:
    """Remove a link from its collection (one commit); return the source it named.

    A tagged link, or one another link names, needs ``force`` (its tags go too)."""
    from modelbox.resolver import resolve_version

    with registry.transaction() as txn:
        snap = txn.snapshot
        version = resolve_version(snap, ref)
        target = f"{ref.model}@{version}"
        if not registry.get_model(ref.model).collection:
            raise InvalidValueError(
                f"{ref.model} is not a collection; remove a version with `modelbox version "
                f"delete {target}`"
            )
        source = registry.get_version(ref.model, version).link
        if source is None:  # a hand-made version in a collection
            raise InvalidValueError(f"{target} is no link; `modelbox version delete {target}`")
        tagged = sorted(t for t, v in registry.tags_in(snap, ref.model).items() if v == version)
        linked = links_to(snap, target)
        if (tagged or linked) and not force:
            why = (f"carries the tags {', '.join(tagged)}" if tagged
                   else f"is linked by {', '.join(linked)}")
            raise InvalidValueError(f"{target} {why}; untag or unlink first, or pass --force")
        txn.delete(layout.version_dir(ref.model, version))
        txn.change = Change("collection.unlink", target, f"unlink {target} (was {source})",
                            before=source)
        current = registry.tags_in(snap, ref.model)
        for tag in tagged:
            del current[tag]
            txn.change.tag_moves.append(TagMove(f"{ref.model}:{tag}", version, None))
        if tagged:
            registry.put_tags(txn, ref.model, current)
    return source
