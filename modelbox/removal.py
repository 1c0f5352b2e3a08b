"""Deleting a whole model, collection or experiment: one audited commit each.

The same rules as deleting a version: what would remove tags, or leave links (or promoted
model versions' lineage) pointing at nothing, needs ``force``; without it
:class:`~modelbox.errors.InUseError` lists them and nothing changes. Git history keeps
everything, so ``git revert`` of the commit brings a deleted model back.

Only the object's own files go (``_model.json`` and its ``_``-folders): a name nests (the
model ``ai/m/x`` lives inside ``ai/m``'s folder), and deleting ``ai/m`` must not take
``ai/m/x`` with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelbox import layout, limits
from modelbox.audit import Change, TagMove
from modelbox.errors import InUseError, InvalidValueError, ModelNotFoundError, NotFoundError
from modelbox.names import ModelName
from modelbox.refs import Snapshot
from modelbox.registry import Registry, Transaction, in_use

__all__ = ["Removed", "delete_experiment", "delete_model"]


@dataclass
class Removed:
    """What a delete did: the tags it removed and the links it left dangling."""

    name: str
    versions: list[str] = field(default_factory=list)  # versions or checkpoints
    tags: list[str] = field(default_factory=list)  # TAG -> VERSION it was on
    dangling: list[str] = field(default_factory=list)  # links (or promoted versions)


def _own_files(txn: Transaction, folder: str) -> None:
    for name, _ in txn.snapshot.listdir(folder):
        # The namespace of the same path keeps its manifest (ai/vision the model and the
        # namespace share a folder): deleting a model never changes who owns a namespace.
        if name.startswith("_") and name != layout.NAMESPACE_FILE:
            txn.delete(f"{folder}/{name}")


def _doc(snap: Snapshot, path: str, kind: str) -> dict[str, object]:
    try:
        doc = limits.loads(snap.read(path) or b"{}", kind)
    except ValueError:
        return {}  # a broken document: `modelbox check` reports it; the delete goes on
    return doc if isinstance(doc, dict) else {}


def delete_model(
    registry: Registry, name: ModelName, *, force: bool = False, collection: bool = False,
) -> Removed:
    """Delete model (or, with ``collection``, collection) ``name`` in one commit.

    Needs ``force`` if any version is tagged or linked from another collection; raises
    InvalidValueError when ``name`` is the other kind (a collection named to
    ``model delete``)."""
    from modelbox.collections import iter_links

    kind = "collection" if collection else "model"
    with registry.transaction() as txn:
        snap = txn.snapshot
        if snap.read(layout.model_file(name)) is None:
            if snap.read(layout.experiment_file(name)) is not None:
                raise InvalidValueError(f"{name} is an experiment; `modelbox experiment "
                                        f"delete {name}` deletes it")
            raise ModelNotFoundError(str(name))
        is_collection = _doc(snap, layout.model_file(name), "model").get("collection") is True
        if is_collection != collection:
            other = "collection" if is_collection else "model"
            raise InvalidValueError(
                f"{name} is a {other}, not a {kind}; `modelbox {other} delete {name}` "
                "deletes it"
            )
        removed = Removed(str(name))
        removed.versions = sorted(v for v, is_dir in snap.listdir(layout.versions_dir(name))
                                  if is_dir)
        tags = registry.tags_in(snap, name)
        removed.tags = [f"{tag} -> {version}" for tag, version in sorted(tags.items())]
        inside = f"{name}@"
        removed.dangling = sorted(
            f"{link} -> {source}" for link, source, _ in iter_links(snap)
            if source.startswith(inside) and not link.startswith(inside)
        )
        if (tags or removed.dangling) and not force:
            raise InUseError("delete", f"{kind} {name}",
                             in_use(sorted(tags), removed.dangling))
        _own_files(txn, layout.model_dir(name))
        txn.change = Change(
            f"{kind}.delete", str(name), f"{kind} delete {name}",
            before=f"{len(removed.versions)} version(s)"
            + (f"; dangling links: {', '.join(removed.dangling)}" if removed.dangling else ""),
        )
        txn.change.tag_moves.extend(TagMove(f"{name}:{tag}", version, None)
                                    for tag, version in sorted(tags.items()))
    return removed


def _checkpoint_links(snap: Snapshot, name: ModelName) -> list[str]:
    """The collection links (``C@V <- EXP@CKPT``) that name a checkpoint of ``name``."""
    from modelbox.collections import iter_links

    prefix = f"{name}@"
    return sorted(f"{link} <- {source}" for link, source, _ in iter_links(snap)
                  if source.startswith(prefix) and "/" not in source[len(prefix):])


def delete_experiment(registry: Registry, name: ModelName, *, force: bool = False) -> Removed:
    """Delete an experiment with its checkpoints, series and events in one commit.

    Needs ``force`` if a checkpoint was promoted to a model version (that version then
    names a ``source_checkpoint`` that is gone; its artifacts stay, they are its own)."""
    with registry.transaction() as txn:
        snap = txn.snapshot
        if snap.read(layout.experiment_file(name)) is None:
            raise NotFoundError(f"experiment {name} does not exist; `modelbox experiment "
                                "list` shows the experiments there are")
        removed = Removed(str(name))
        folder = f"{layout.experiment_dir(name)}/{layout.CHECKPOINTS_DIR}"
        for checkpoint, is_dir in snap.listdir(folder):
            if not is_dir:
                continue
            removed.versions.append(checkpoint)
            doc = _doc(snap, layout.checkpoint_file(name, checkpoint), "checkpoint")
            promoted = doc.get("promoted_to")
            if isinstance(promoted, list):
                removed.dangling += [f"{target} <- {name}@{checkpoint}" for target in promoted
                                     if isinstance(target, str)]
        linked = _checkpoint_links(snap, name)
        if (removed.dangling or linked) and not force:
            raise InUseError("delete", f"experiment {name}", [
                *([f"unlink the collection links to its checkpoints ({', '.join(linked)})"]
                  if linked else []),
                *(["leave the lineage of the versions promoted from it naming a deleted "
                   f"checkpoint ({', '.join(removed.dangling)})"] if removed.dangling else [])])
        removed.dangling += linked
        _own_files(txn, layout.experiment_dir(name))
        txn.change = Change("experiment.delete", str(name), f"experiment delete {name}",
                            before=f"{len(removed.versions)} checkpoint(s)")
    return removed
