"""Artifacts of models and versions: pointer files in Git, content in the object store.

``add`` hashes each file once (remembered by path, size, mtime and inode), uploads only
what the store lacks, in parallel, and only then commits the pointers — so a pointer on the
branch never names an object the store does not have. ``get`` places every file through
the machine's object cache, verified while streaming, whole or not at all, and refuses a
pointer whose path would leave the destination. Downloads are recorded on
``refs/modelbox/audit``, not on the registry branch.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from modelbox import claims, layout, limits, releases
from modelbox.audit import Change
from modelbox.collisions import refuse_case_twin
from modelbox.directories import Folder, placements
from modelbox.errors import ArtifactError, InvalidValueError, ManifestError
from modelbox.filetypes import FileType, mime_type, sniff
from modelbox.filetypes import file_type as type_of
from modelbox.manifests import ArtifactPointer, DirectoryManifest, now, parse
from modelbox.names import Reference, fold
from modelbox.objects import FileDigest, HashCache, ObjectStore, hash_file, open_store, schemes
from modelbox.objects.packs import Slot
from modelbox.objects.schemes import check_remote_url
from modelbox.refs import Snapshot
from modelbox.registry import Registry

ARTIFACTS_DIR = layout.ARTIFACTS_DIR


@dataclass(frozen=True)
class Artifact:
    """One artifact as the seed API shows it (``parent``, ``path``, ``mime_type``, ...)."""

    parent: str
    path: str
    file_type: str
    mime_type: str
    size: int
    checksum: str
    uri: str | None = None
    etag: str | None = None
    directory: bool = False
    files: int | None = None

    @property
    def id(self) -> str:
        return self.checksum or self.uri or self.path

    @classmethod
    def of(cls, parent: str, pointer: ArtifactPointer) -> Artifact:
        return cls(
            parent, pointer.path, pointer.file_type.value, pointer.mime_type, pointer.size,
            pointer.sha256 or "", pointer.uri, pointer.etag, pointer.directory, pointer.files,
        )

    def to_json(self) -> dict[str, object]:
        return {
            "parent": self.parent, "path": self.path, "file_type": self.file_type,
            "mime_type": self.mime_type, "size": self.size, "sha256": self.checksum or None,
            "uri": self.uri, "directory": self.directory, "files": self.files,
        }


def store_url(registry: Registry) -> str:
    """The store, first found of: ``$MODELBOX_STORE``; this clone's ``git config
    modelbox.store``; the registry's shared ``store`` setting; the clone's own folder
    ``.git/modelbox/store`` (the embedded default, like git-lfs's objects)."""
    return (
        os.environ.get("MODELBOX_STORE")
        or registry.repo.config_value("modelbox", "store")
        or shared_store(registry)
        or str(registry.repo.git_dir / "modelbox" / "store")
    )


def allowed_schemes(registry: Registry) -> frozenset[str]:
    """The URL schemes a pointer or the store setting may name in this clone: the fixed
    list plus ``git config modelbox.allowedSchemes`` (see :mod:`modelbox.objects.schemes`)."""
    return schemes.allowed_schemes(registry.repo.config_value(*schemes.CONFIG_KEY))


def shared_store(registry: Registry) -> str | None:
    """The registry's ``store`` setting, checked as the untrusted input it is (it comes
    from whoever pushed ``.modelbox/registry.json``): a folder path is taken relative to
    the registry root, a URL must carry no credentials and name an allowed scheme.

    Raises:
        InvalidValueError: the setting carries credentials, chains URLs or names a scheme
            this clone does not allow.
    """
    store = registry.settings.store
    if not store:
        return None
    schemes.check_store_url(store, f"the store setting of {layout.SETTINGS}",
                            allowed_schemes(registry))
    if schemes.scheme_of(store) is None:
        root = registry.repo.root or registry.repo.git_dir
        return os.path.normpath(os.path.join(root, store))
    return store


def open_registry_store(registry: Registry) -> ObjectStore:
    """The registry's store, opened once per process for the same URL and environment:
    a new S3 client costs ~0.1-0.2 s, more than re-adding an unchanged file should."""
    settings = tuple(sorted(
        (k, v) for k, v in os.environ.items() if k.startswith(("AWS_", "FSSPEC_"))
    ))
    return _open_store(store_url(registry), settings)


@functools.lru_cache(maxsize=8)
def _open_store(url: str, environment: tuple[tuple[str, str], ...]) -> ObjectStore:
    del environment  # part of the cache key only: new credentials mean a new client
    return open_store(url)


def _pointer_path(target_dir: str, path: str) -> str:
    return f"{target_dir}/{ARTIFACTS_DIR}/{path}.json"


def _check_name(snapshot: Snapshot, target_dir: str, path: str) -> None:
    """Refuse, before anything is hashed or uploaded, an artifact whose pointer could not be
    written: too long a path, or one a case-insensitive clone would take for another's.
    (:func:`_commit` checks the case again under the lock.)"""
    pointer = _pointer_path(target_dir, path)
    problem = limits.path_problem(pointer)
    if problem:
        raise InvalidValueError(
            f"invalid artifact name {limits.shown(path)!r}: {problem}; choose another name "
            "with --as"
        )
    refuse_case_twin(snapshot, "artifact", pointer)


def _target_dir(
    registry: Registry, ref: Reference, snapshot: Snapshot | None = None
) -> tuple[str, str]:
    snapshot = snapshot or registry.snapshot()
    path, manifest, target = registry.target(snapshot, ref)
    if getattr(manifest, "link", None):
        raise InvalidValueError(f"{target} is a link to {getattr(manifest, 'link', '')}; "
                                "add artifacts to that version instead")
    # Before anything is hashed or uploaded (the registry refuses the commit anyway).
    releases.refuse_if_released(snapshot, path.rsplit("/", 1)[0], target)
    return path.rsplit("/", 1)[0], target


def _sources(paths: list[Path]) -> list[Path]:
    out = []
    for path in paths:
        if not path.exists():
            raise ArtifactError(f"{path}: no such file or folder")
        out.append(path.resolve() if path.is_symlink() else path)
    return out


def _walk(root: Path) -> list[Path]:
    """Every file below ``root``, refusing links (they could point anywhere)."""
    files: list[Path] = []
    for folder, dirs, names in os.walk(root):
        for name in dirs + names:
            entry = Path(folder, name)
            if entry.is_symlink():
                raise ArtifactError(f"{entry} is a symbolic link; replace it with the file")
        files.extend(Path(folder, name) for name in names)
    return sorted(files)


def add(
    registry: Registry,
    ref: Reference,
    paths: list[Path],
    *,
    file_type: FileType | None = None,
    name: str | None = None,
    progress: bool | None = None,
) -> list[Artifact]:
    """Upload files or folders and attach them to a model or version (one commit)."""
    if name is not None and len(paths) != 1:
        raise InvalidValueError("--as names one artifact; give a single PATH")
    snapshot = registry.snapshot()
    target_dir, target = _target_dir(registry, ref, snapshot)
    cache = HashCache.default()
    uploads: list[tuple[Path, FileDigest]] = []
    folders: list[tuple[int, Folder, ArtifactPointer]] = []
    pointers: list[ArtifactPointer] = []
    try:
        for source in _sources(paths):
            artifact_path = name or source.name
            _check_name(snapshot, target_dir, artifact_path)
            if source.is_dir():
                files = _walk(source)
                folder = Folder.scan(source, files, cache)
                if folder.packed is None and snapshot.read(
                    _pointer_path(target_dir, artifact_path)
                ) is not None:
                    # It may be recorded already: decide here, with no store. (A new
                    # path cannot be, and its files are read once, while they are sent.)
                    folder.measure(cache)
                kinds = {sniff(f)[0] for f in files[:64]}
                draft = _pointer(artifact_path, file_type or _dir_type(kinds), "inode/directory",
                                 folder.size, directory=True, files=len(files))
                known = folder.listing()
                pointer = _named(draft, known.to_bytes()) if known is not None else None
                if pointer is None or not _recorded(snapshot, target_dir, pointer):
                    uploads.extend(folder.uploads())
                    folders.append((len(pointers), folder, draft))
                pointers.append(pointer or draft)
            else:
                digest = hash_file(source, cache=cache)
                kind, mime = sniff(source)
                pointer = _pointer(artifact_path, file_type or kind, mime, digest.size,
                                   sha256=digest.sha256)
                if not _recorded(snapshot, target_dir, pointer):
                    uploads.append((source, digest))
                pointers.append(pointer)
        if not uploads and not folders:
            return _commit(registry, ref, target_dir, target, pointers, "artifact.add")
        store = open_registry_store(registry)
        digests = _put(store, uploads, folders, pointers, cache, progress)
        # gc in any clone keeps what a fresh claim names, however old the object is.
        claims.claim(store, claims.identity(registry.repo, registry.head()), digests)
        added = _commit(registry, ref, target_dir, target, pointers, "artifact.add")
        # A gc batch that read the claims just before ours may have deleted an object we
        # found present: once that batch is over, put again what is missing (we hold the
        # files). See docs/store.md, "gc racing a write".
        claims.wait_for_gc(store)
        _put(store, uploads, folders, list(pointers), cache, False)
        return added
    finally:
        cache.close()


def _put(
    store: ObjectStore, uploads: list[tuple[Path, FileDigest]],
    folders: list[tuple[int, Folder, ArtifactPointer]], pointers: list[ArtifactPointer],
    cache: HashCache, progress: bool | None,
) -> set[str]:
    """Store what the store lacks of ``uploads`` and ``folders`` (naming each folder's
    pointer in ``pointers``); return every digest the pointers will need."""
    store.put_files(uploads, progress=progress)
    digests = {digest.sha256 for _, digest in uploads}
    for position, folder, draft in folders:
        manifest = folder.store_packs(store, cache, progress=progress)
        listing = manifest.to_bytes()
        store.put_bytes(listing)
        pointers[position] = _named(draft, listing)
        digests.update(manifest.objects())
        digests.add(_sha256(listing))
    return digests


def _named(draft: ArtifactPointer, listing: bytes) -> ArtifactPointer:
    """The directory pointer ``draft`` naming the listing object ``listing``."""
    return draft.model_copy(update={"sha256": _sha256(listing)})


def _recorded(snapshot: Snapshot, target_dir: str, pointer: ArtifactPointer) -> bool:
    """Whether the branch already records this very content at this artifact path.

    Such a pointer was committed only after its objects were stored, and gc keeps what the
    branch references, so adding it again needs no upload and no word with the store (like
    ``git add`` of an unchanged file): an unchanged 10 GB re-add costs a stat.
    """
    data = snapshot.read(_pointer_path(target_dir, pointer.path))
    if data is None:
        return False
    try:
        old = parse(ArtifactPointer, target_dir, data)
    except ManifestError:
        return False
    return (old.sha256, old.size, old.uri) == (pointer.sha256, pointer.size, pointer.uri)


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _dir_type(kinds: set[FileType]) -> FileType:
    for kind in (FileType.MODEL, FileType.CHECKPOINT, FileType.DATASET):
        if kind in kinds:
            return kind
    return FileType.OTHER


def _pointer(path: str, kind: FileType, mime: str, size: int, **extra: object) -> ArtifactPointer:
    from pydantic import ValidationError

    try:
        return ArtifactPointer.model_validate(
            {"path": path, "file_type": kind, "mime_type": mime, "size": size,
             "created_at": now(), **extra}
        )
    except ValidationError as exc:
        where = ".".join(str(p) for p in exc.errors()[0]["loc"])
        raise InvalidValueError(f"invalid artifact {path!r}: {where}: {exc.errors()[0]['msg']}"
                                ) from None


def track(registry: Registry, ref: Reference, uris: list[str]) -> list[Artifact]:
    """Record external files by URI, with their size and ETag (one commit)."""
    from modelbox.objects.external import describe

    snapshot = registry.snapshot()
    target_dir, target = _target_dir(registry, ref, snapshot)
    pointers = []
    allowed = allowed_schemes(registry)
    for uri in uris:
        name = uri.rstrip("/").rsplit("/", 1)[-1]
        _check_name(snapshot, target_dir, name)
        info = describe(uri, allowed=allowed)
        mime = mime_type(name)
        kind = type_of(name, mime)
        pointers.append(_pointer(name, kind, mime, info.size, uri=uri, etag=info.etag))
    return _commit(registry, ref, target_dir, target, pointers, "artifact.track")


def _commit(
    registry: Registry, ref: Reference, target_dir: str, target: str,
    pointers: list[ArtifactPointer], operation: str,
) -> list[Artifact]:
    names = [p.path for p in pointers]
    if len({fold(name) for name in names}) != len(names):  # a clone on macOS: one file
        raise InvalidValueError(f"two artifacts would both be called {names}; use --as")
    with registry.transaction() as txn:
        registry.target(txn.snapshot, ref)  # still there, under the lock
        changed = []
        for pointer in pointers:
            path = _pointer_path(target_dir, pointer.path)
            old = txn.snapshot.read(path)
            if old is not None:
                previous = parse(ArtifactPointer, path, old)
                if (previous.sha256, previous.uri, previous.size) == (
                    pointer.sha256, pointer.uri, pointer.size
                ):
                    continue
            else:
                refuse_case_twin(txn.snapshot, "artifact", path)
            txn.put(path, pointer)
            changed.append(pointer)
        if changed:
            what = ", ".join(p.path for p in changed)
            txn.change = Change(
                operation, target, f"{operation.replace('.', ' ')} {target} {what}",
                after=" ".join(f"{p.path}={p.sha256 or p.uri}" for p in changed),
            )
    return [Artifact.of(target, p) for p in pointers]


def list_artifacts(registry: Registry, ref: Reference) -> list[Artifact]:
    """The artifacts of a model or version, by path."""
    snap = registry.snapshot()
    path, manifest, target = registry.target(snap, ref)
    via, pinned = "", getattr(manifest, "digest", None)
    if getattr(manifest, "link", None):  # a collection's link: the source's artifacts
        from modelbox.collections import follow

        model, version = follow(snap, ref.model, target.rpartition("@")[2])[-1]
        via = target
        path, target = layout.version_file(model, version), f"{model}@{version}"
    root = f"{path.rsplit('/', 1)[0]}/{ARTIFACTS_DIR}"
    out = []
    stack = [root]
    while stack:
        folder = stack.pop()
        for name, is_dir in snap.listdir(folder):
            full = f"{folder}/{name}"
            if is_dir:
                stack.append(full)
            elif name.endswith(".json"):
                pointer = parse(ArtifactPointer, full, snap.read(full) or b"")
                expected = full[len(root) + 1 : -len(".json")]
                if pointer.path != expected:
                    raise ManifestError(full, f"path: says {pointer.path!r} but sits at "
                                        f"{expected!r}; fix the file")
                out.append(Artifact.of(target, pointer))
    # Through a link or onto a released version: the set must be the one released.
    releases.check_read(snap, path, target, [
        (a.path, a.checksum or None, a.size, a.uri) for a in out], pinned, via)
    return sorted(out, key=lambda a: a.path)


def _pointer_name(artifact: Artifact) -> str:
    return f"the pointer {artifact.path} of {artifact.parent}"


def safe_destination(root: Path, relative: str) -> Path:
    """``root / relative``, refusing anything that would land outside ``root``."""
    parts = relative.split("/")
    if relative.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in relative:
        raise ArtifactError(f"refusing to write {relative!r}: it would leave {root}")
    current = root
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise ArtifactError(f"refusing to write through the symbolic link {current}")
    return current


def get(
    registry: Registry, ref: Reference, dest: Path, *, progress: bool | None = None,
    verify: bool = False,
) -> list[Path]:
    """Download every artifact of a model or version into ``dest``; return what was placed."""
    from modelbox.objects.external import fetch

    artifacts = list_artifacts(registry, ref)
    store = open_registry_store(registry)
    allowed = allowed_schemes(registry)
    items: list[tuple[str, int, Path]] = []
    slots: dict[str, Slot] = {}
    tracked: list[tuple[Artifact, Path]] = []
    for artifact in artifacts:
        place = safe_destination(dest, artifact.path)
        if artifact.uri:  # refused before anything is fetched when the scheme is not allowed
            check_remote_url(artifact.uri, _pointer_name(artifact), allowed)
            tracked.append((artifact, place))
        elif artifact.directory:
            listing = parse(DirectoryManifest, f"sha256:{artifact.checksum}",
                            store.open_bytes(artifact.checksum))
            files, found = placements(listing, functools.partial(safe_destination, place))
            items.extend(files)
            slots.update(found)
        else:
            items.append((artifact.checksum, artifact.size, place))
    store.get_files(items, progress=progress, verify=verify, slots=slots)
    for artifact, place in tracked:
        fetch(artifact.uri or "", place, size=artifact.size, etag=artifact.etag,
              allowed=allowed, what=_pointer_name(artifact))
    target = artifacts[0].parent if artifacts else str(ref)
    registry.record_event(Change(
        "artifact.download", target, f"download {target} to {dest}",
        after=" ".join(f"{a.path}={a.checksum or a.uri}" for a in artifacts),
    ))
    return [p for _, _, p in items] + [p for _, p in tracked]


__all__ = ["Artifact", "add", "get", "list_artifacts", "track"]
