"""Who writes to a store, and which objects a write is about to reference: the notes gc
reads before it deletes anything (docs/store.md, "Garbage collection").

* ``clones/<clone id>.json`` — rewritten by every write (``artifact add``, ``push``): the
  registry (its root commit), the clone (host and path) and when it last wrote. gc refuses
  a store that another registry writes to: it cannot see that registry's pointers.
* ``claims/<clone id>-<time>-<random>.json`` — the objects one write is about to commit
  pointers to, written after they are in the store and before the commit. gc keeps every
  object a claim younger than the grace period names, in any clone, pushed or not; gc
  deletes claims older than that.
* ``gc/<clone id>.json`` — a gc deleting objects right now, rewritten before each batch
  (which then re-reads the claims). After committing, a write waits until every such note
  has moved on to a later batch or gone, then puts its objects again: whatever a gc
  deleted between the write's check and its commit is uploaded again, from the files the
  write still holds.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from modelbox.errors import ManifestError
from modelbox.objects import ObjectStore
from modelbox.refs import GitRepo

CLONES, CLAIMS, GC = "clones", "claims", "gc"
GC_STALE_SECONDS = 120.0
"""A gc note older than this belongs to a gc that died: nobody waits for it."""
GC_WAIT_SECONDS = 120.0
"""The longest a write waits for a gc to finish one batch."""
_POLL_SECONDS = 0.1
_IDENTITY = "modelbox/clone.json"  # below the git common dir


@dataclass(frozen=True)
class Clone:
    """This clone as the store's notes name it."""

    id: str
    registry: str  # the registry branch's root commit: the same in every clone of it
    where: str  # host:path


@dataclass(frozen=True)
class Writer:
    """One ``clones/`` note: a clone that wrote to the store."""

    id: str
    registry: str
    where: str
    written: float


def identity(repo: GitRepo, head: str | None, *, keep: bool = True) -> Clone:
    """This clone's id and its registry's root commit, made once and kept in
    ``.git/modelbox/clone.json`` (the root is found by one first-parent walk); without
    ``keep`` a new identity is not written down (gc: a clone that never wrote has no note)."""
    path = repo.common_dir / _IDENTITY
    where = f"{socket.gethostname()}:{repo.root or repo.git_dir}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("registry") and isinstance(data.get("id"), str):
            return Clone(data["id"], str(data["registry"]), where)
    except (OSError, ValueError):
        pass  # none yet, or damaged: make it again
    root = _root_commit(repo, head)
    clone = Clone(uuid.uuid4().hex, root or "", where)
    if root and keep:  # an empty registry has no identity yet; its first commit gives it one
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}")
        temp.write_text(json.dumps({"id": clone.id, "registry": root}), encoding="utf-8")
        os.replace(temp, path)
    return clone


def _root_commit(repo: GitRepo, head: str | None) -> str | None:
    sha = head
    while sha is not None:
        parents = repo.commit_info(sha).parents
        if not parents:
            return sha
        sha = parents[0].decode()
    return None


def claim(store: ObjectStore, clone: Clone, digests: Iterable[str]) -> None:
    """Record in ``store`` that this clone is about to reference ``digests`` (one small
    write), and refresh its ``clones/`` note.

    Raises:
        StoreError: the store failed.
    """
    now = time.time()
    wanted = sorted(set(digests))
    note = {"registry": clone.registry, "clone": clone.where, "written": now}
    store.put_note(CLONES, f"{clone.id}.json", json.dumps(note).encode())
    if wanted:
        name = f"{clone.id}-{time.time_ns()}-{uuid.uuid4().hex[:8]}.json"
        store.put_note(CLAIMS, name, json.dumps({**note, "objects": wanted}).encode())


def wait_for_gc(store: ObjectStore) -> None:
    """Return once every gc deleting from ``store`` right now has finished the batch it is
    in (its ``gc/`` note was rewritten for the next batch, or removed), or after
    :data:`GC_WAIT_SECONDS`. Each later batch re-reads the claims, so it sees ours.

    Raises:
        StoreError: the store failed.
    """
    deadline = time.monotonic() + GC_WAIT_SECONDS
    running = _running(store)
    while running and time.monotonic() < deadline:
        time.sleep(_POLL_SECONDS)
        now = _running(store)
        running = {name: note for name, note in running.items() if now.get(name) == note}


def _running(store: ObjectStore) -> dict[str, bytes]:
    """The fresh ``gc/`` notes -> their content (which names the batch being deleted)."""
    cutoff = time.time() - GC_STALE_SECONDS
    out = {}
    for name, written in store.notes(GC).items():
        note = store.read_note(GC, name) if written > cutoff else None
        if note is not None:  # None: that gc has just finished
            out[name] = note
    return out


def writers(store: ObjectStore) -> list[Writer]:
    """Every clone that recorded a write to ``store``.

    Raises:
        StoreError: the store failed.
    """
    out = []
    for name, written in sorted(store.notes(CLONES).items()):
        data = _read(store, CLONES, name)
        registry, where = data.get("registry"), data.get("clone")
        out.append(Writer(name.removesuffix(".json"), registry if isinstance(registry, str)
                          else "", where if isinstance(where, str) else "?", written))
    return out


def _read(store: ObjectStore, folder: str, name: str) -> dict[str, object]:
    raw = store.read_note(folder, name)
    try:
        data = json.loads(raw) if raw is not None else {}
    except ValueError:
        raise ManifestError(f"{store.url}/{folder}/{name}", "not JSON; delete the file") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{store.url}/{folder}/{name}", "not a JSON object; delete the file")
    return data


class Claims:
    """The claims of a store, read once each and re-read for new ones before each delete."""

    def __init__(self, store: ObjectStore, cutoff: float) -> None:
        self._store = store
        self._cutoff = cutoff
        self._seen: set[str] = set()
        self.stale: list[str] = []  # older than the grace period: gc deletes them
        self.objects: set[str] = set()

    def refresh(self) -> set[str]:
        """Read the claims not read yet; return every object a fresh claim names.

        Raises:
            StoreError: the store failed.
            ManifestError: a claim is not a JSON object.
        """
        for name, written in self._store.notes(CLAIMS).items():
            if name in self._seen:
                continue
            self._seen.add(name)
            if written <= self._cutoff:
                self.stale.append(name)
                continue
            objects = _read(self._store, CLAIMS, name).get("objects")
            if isinstance(objects, list):
                self.objects.update(o for o in objects if isinstance(o, str))
        return self.objects


class Deleting:
    """The ``gc/`` note of a gc while it deletes: written on entry, rewritten with the
    number of each batch by :meth:`next_batch` before that batch re-reads the claims,
    removed on exit."""

    def __init__(self, store: ObjectStore, clone: Clone) -> None:
        self._store, self._name = store, f"{clone.id}.json"
        self._note = {"clone": clone.where, "pid": os.getpid(), "batch": 0}

    def __enter__(self) -> Deleting:
        self._write()
        return self

    def next_batch(self) -> None:
        assert isinstance(self._note["batch"], int)
        self._note["batch"] += 1
        self._write()

    def _write(self) -> None:
        self._store.put_note(GC, self._name, json.dumps(self._note).encode())

    def __exit__(self, *exc: object) -> None:
        self._store.delete_notes(GC, [self._name])
