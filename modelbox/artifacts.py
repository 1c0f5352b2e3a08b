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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from modelbox import claims, layout, limits, pathcheck, releases
from modelbox.audit import Change
from modelbox.collisions import refuse_case_twin
from modelbox.directories import Folder, placements
from modelbox.errors import (
    ArtifactError,
    ArtifactExistsError,
    InvalidValueError,
    ManifestError,
    NotFoundError,
)
from modelbox.filetypes import ArtifactMime, FileType, as_mime, mime_type, sniff
from modelbox.filetypes import file_type as type_of
from modelbox.manifests import ArtifactPointer, DirectoryManifest, now, parse
from modelbox.names import Reference, fold
from modelbox.objects import FileDigest, HashCache, ObjectStore, hash_file, open_store, schemes
from modelbox.objects.hashing import cached_digest
from modelbox.objects.packs import Slot
from modelbox.objects.schemes import check_remote_url
from modelbox.objects.staging import Staging
from modelbox.refs import Snapshot
from modelbox.registry import Registry

ARTIFACTS_DIR = layout.ARTIFACTS_DIR


@dataclass(frozen=True)
class Artifact:
    """One artifact as seed 003 defines it: ``Artifact(parent, path, mime_type, checksum,
    id)``, with what modelbox records besides (file type, size, a tracked file's URI...).

    ``id`` defaults to the checksum (else the URI, else the path); ``updated_at`` is when
    the pointer was last written (adding or replacing the artifact)."""

    parent: str
    path: str
    mime_type: ArtifactMime | str = ArtifactMime.Unknown
    checksum: str = ""
    id: str = ""
    file_type: FileType = FileType.UNDEFINED
    size: int = 0
    uri: str | None = None
    etag: str | None = None
    directory: bool = False
    files: int | None = None
    verified: bool = True  # False: tracked with --no-check, size and checksum unknown
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        # Frozen: the seed's defaults filled the one way a frozen dataclass allows.
        object.__setattr__(self, "mime_type", as_mime(self.mime_type))
        if not self.id:
            object.__setattr__(self, "id", self.checksum or self.uri or self.path)

    @classmethod
    def of(cls, parent: str, pointer: ArtifactPointer) -> Artifact:
        return cls(
            parent, pointer.path, pointer.mime_type, pointer.sha256 or "",
            file_type=pointer.file_type, size=pointer.size, uri=pointer.uri,
            etag=pointer.etag, directory=pointer.directory, files=pointer.files,
            verified=pointer.verified, updated_at=pointer.created_at,
        )

    def to_json(self) -> dict[str, object]:
        return {
            "parent": self.parent, "path": self.path, "file_type": self.file_type.value,
            "mime_type": str(getattr(self.mime_type, "value", self.mime_type)),
            "size": self.size, "sha256": self.checksum or None,
            "uri": self.uri, "directory": self.directory, "files": self.files,
            "verified": self.verified,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


def store_url(registry: Registry) -> str:
    """The store, first found of: ``$MODELBOX_STORE``; this clone's ``git config
    modelbox.store``; the registry's shared ``store`` setting; the clone's own folder
    ``.git/modelbox/store`` (the embedded default, like git-lfs's objects)."""
    return (
        os.environ.get("MODELBOX_STORE")
        or registry.repo.config_value("modelbox", "store")
        or shared_store(registry)
        or registry.own_store()
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
        root = registry.store_root()
        return os.path.normpath(os.path.join(root, store))
    return store


def open_registry_store(registry: Registry) -> ObjectStore:
    """The registry's store, opened once per process for the same URL and environment:
    a new S3 client costs ~0.1-0.2 s, more than re-adding an unchanged file should."""
    settings = tuple(sorted(
        (k, v) for k, v in os.environ.items()
        if k.startswith(("AWS_", "FSSPEC_", "MODELBOX_STORE_"))  # _STORE_: its timeouts
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
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        # The schema's pattern ends in ``$``, which Python lets match before a final line
        # break: a name "model.pt\n" would pass it. Refused here, where names enter.
        problem = "it holds a control character (a line break, a tab...)"
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
    """Every file below ``root``, refusing links (they could point anywhere). A ``.git``
    folder (a clone's own repository, as in a model cloned from a hub) is left out, as
    git and DVC leave it out: `get` would not place it."""
    files: list[Path] = []
    for folder, dirs, found in os.walk(root):
        dirs[:] = [name for name in dirs if name != ".git"]
        names = [name for name in found if name != ".git"]
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
    replace: bool = False,
    progress: bool | None = None,
) -> list[Artifact]:
    """Upload files or folders and attach them to a model or version (one commit).

    Raises:
        ArtifactExistsError: a path is taken by other content and ``replace`` is False
            (checked before anything is uploaded, and again under the lock).
        IdentityError: no Git identity to author the commit (checked before any upload).
    """
    if name is not None and len(paths) != 1:
        raise InvalidValueError("--as names one artifact; give a single PATH")
    registry.repo.identity()
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
            # A folder that may be recorded already is measured now, to decide with no
            # store. (A new path cannot be, and its files are read once, while sent.)
            recorded = functools.partial(_exists, snapshot, _pointer_path(target_dir,
                                                                          artifact_path))
            scanned = _Scanned.of(source, artifact_path, file_type, cache, measure=recorded)
            if not replace:
                _refuse_taken(snapshot, target_dir, target, artifact_path, scanned.known)
            if scanned.known is None or not _recorded(snapshot, target_dir, scanned.known):
                scanned.send(uploads, folders, len(pointers))
            pointers.append(scanned.pointer)
        if not uploads and not folders:
            return _commit(registry, ref, target_dir, target, pointers, "artifact.add",
                           replace=replace)
        store = open_registry_store(registry)
        digests = _put(store, uploads, folders, pointers, cache, progress)
        # gc in any clone keeps what a fresh claim names, however old the object is.
        claims.claim(store, claims.identity(registry.repo, registry.head()), digests)
        added = _commit(registry, ref, target_dir, target, pointers, "artifact.add",
                        replace=replace)
        # A gc batch that read the claims just before ours may have deleted an object we
        # found present: once that batch is over, put again what is missing (we hold the
        # files). See docs/store.md, "gc racing a write".
        claims.wait_for_gc(store)
        _put(store, uploads, folders, list(pointers), cache, False)
        return added
    finally:
        cache.close()


def _exists(snapshot: Snapshot, path: str) -> bool:
    return snapshot.read(path) is not None


@dataclass(frozen=True)
class _Scanned:
    """One source file or folder, hashed (a file) or scanned (a folder): the pointer it
    makes and what sending it to the store takes. What :func:`add` and :func:`stage` share."""

    draft: ArtifactPointer  # a folder's: without its listing's digest until it is stored
    known: ArtifactPointer | None  # the final pointer, when known before storing
    upload: tuple[Path, FileDigest] | None  # a file's
    folder: Folder | None

    @property
    def pointer(self) -> ArtifactPointer:
        return self.known or self.draft

    @classmethod
    def of(cls, source: Path, artifact_path: str, file_type: FileType | None,
           cache: HashCache, *, measure: Callable[[], bool] | None = None,
           into: ObjectStore | None = None) -> _Scanned:
        """``measure``: whether to hash a folder's files now (to know its pointer);
        ``into``: a store to copy a file into while hashing it, for files most likely new
        to it (one read where hashing and uploading take two)."""
        if not source.is_dir():
            digest = None
            if into is not None and cached_digest(source, cache)[1] is None:
                digest = into.put_hashing(source, cache)
            if digest is None:
                digest = hash_file(source, cache=cache)
            kind, mime = sniff(source)
            pointer = _pointer(artifact_path, file_type or kind, mime, digest.size,
                               sha256=digest.sha256)
            return cls(pointer, pointer, (source, digest), None)
        files = _walk(source)
        folder = Folder.scan(source, files, cache)
        if folder.packed is None and measure is not None and measure():
            folder.measure(cache)
        kinds = {sniff(f)[0] for f in files[:64]}
        draft = _pointer(artifact_path, file_type or _dir_type(kinds), "inode/directory",
                         folder.size, directory=True, files=len(files))
        listing = folder.listing()
        return cls(draft, _named(draft, listing.to_bytes()) if listing is not None else None,
                   None, folder)

    def send(self, uploads: list[tuple[Path, FileDigest]],
             folders: list[tuple[int, Folder, ArtifactPointer]], position: int) -> None:
        """Queue it for :func:`_put` as the pointer at ``position``."""
        if self.folder is None:
            assert self.upload is not None
            uploads.append(self.upload)
        else:
            uploads.extend(self.folder.uploads())
            folders.append((position, self.folder, self.draft))


@dataclass
class Staged:
    """Files and folders put in the store and claimed, their pointers not committed yet
    (:func:`stage`). After the caller's commit, :meth:`settle` puts again whatever a gc
    that raced the claim deleted (what :func:`add` does after its own commit)."""

    pointers: list[ArtifactPointer]
    _store: ObjectStore
    _uploads: list[tuple[Path, FileDigest]]
    _folders: list[tuple[int, Folder, ArtifactPointer]]

    def settle(self) -> None:
        claims.wait_for_gc(self._store)
        cache = HashCache.default()
        try:
            _put(self._store, self._uploads, self._folders, list(self.pointers), cache, False)
        finally:
            cache.close()


def stage(registry: Registry, target_dir: str, paths: list[Path], *,
          progress: bool | None = None) -> Staged:
    """Store files or folders (named after themselves) and claim their objects, committing
    nothing: for a caller that writes the pointers below ``target_dir``, a new object, in
    its own single commit (checkpoint ingest). Hashes each file once, streaming.

    Raises:
        InvalidValueError: a name could not be an artifact's.
        ArtifactError: a path is missing, a link, or changed while read.
        StoreError: the store failed.
    """
    snapshot = registry.snapshot()
    for source in paths:
        _check_name(snapshot, target_dir, source.name)
    cache = HashCache.default()
    uploads: list[tuple[Path, FileDigest]] = []
    folders: list[tuple[int, Folder, ArtifactPointer]] = []
    pointers: list[ArtifactPointer] = []
    store = open_registry_store(registry)
    try:
        for source in _sources(paths):
            # A checkpoint is new to the store: a local one gets it as it is hashed.
            scanned = _Scanned.of(source, source.name, None, cache, into=store)
            scanned.send(uploads, folders, len(pointers))
            pointers.append(scanned.draft)
        digests = _put(store, uploads, folders, pointers, cache, progress)
        claims.claim(store, claims.identity(registry.repo, registry.head()), digests)
        return Staged(pointers, store, uploads, folders)
    finally:
        cache.close()


def pointer_path(target_dir: str, pointer: ArtifactPointer) -> str:
    """Where ``pointer`` is written below an object's folder (``_artifacts/PATH.json``)."""
    return _pointer_path(target_dir, pointer.path)


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


def _recorded_as(pointer: ArtifactPointer) -> str:
    """What a pointer names, for the audit log and messages: ``sha256`` or its URI."""
    return pointer.sha256 or pointer.uri or "-"


def _same(old: ArtifactPointer, new: ArtifactPointer | None) -> bool:
    """Whether ``new`` records what ``old`` does: the same content, or the same URI that
    ``old`` recorded without checking (tracking it again fills in what is known)."""
    if new is None:
        return False
    if old.uri is not None and old.uri == new.uri and not old.verified:
        return True
    return (old.sha256, old.size, old.uri) == (new.sha256, new.size, new.uri)


def _refuse_taken(snapshot: Snapshot, target_dir: str, target: str, path: str,
                  pointer: ArtifactPointer | None) -> None:
    """Refuse to put ``pointer`` (None: content not known yet) where another one is."""
    data = snapshot.read(_pointer_path(target_dir, path))
    if data is None:
        return
    old = parse(ArtifactPointer, _pointer_path(target_dir, path), data)
    if not _same(old, pointer):
        raise ArtifactExistsError(target, path, _shown(old))


def _shown(pointer: ArtifactPointer) -> str:
    return f"sha256:{pointer.sha256}" if pointer.sha256 else pointer.uri or "-"


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


def track(
    registry: Registry, ref: Reference, uris: list[str], *,
    names: list[str] | None = None, replace: bool = False, check: bool = True,
) -> list[Artifact]:
    """Record external files by URI, with their size and ETag (one commit).

    ``names`` gives each URI its artifact path (default: the URI's last segment). With
    ``check=False`` the URI is recorded without contacting its store (one the machine
    cannot reach now): its size and ETag are unknown and the pointer says so
    (``verified: false``); ``get`` fetches it unverified.

    Raises:
        ArtifactExistsError: a path is taken by other content and ``replace`` is False.
        IdentityError: no Git identity to author the commit.
    """
    from modelbox.objects.external import describe, unchecked

    if names is not None and len(names) != len(uris):
        raise InvalidValueError(
            f"{len(names)} name(s) for {len(uris)} URI(s); give one name per URI"
        )
    registry.repo.identity()
    snapshot = registry.snapshot()
    target_dir, target = _target_dir(registry, ref, snapshot)
    pointers = []
    allowed = allowed_schemes(registry)
    for i, uri in enumerate(uris):
        name = names[i] if names is not None else uri.rstrip("/").rsplit("/", 1)[-1]
        _check_name(snapshot, target_dir, name)
        info = describe(uri, allowed=allowed) if check else unchecked(uri, allowed=allowed)
        mime = mime_type(name)
        kind = type_of(name, mime)
        pointer = _pointer(name, kind, mime, info.size, uri=uri, etag=info.etag,
                           verified=check)
        if not replace:
            _refuse_taken(snapshot, target_dir, target, name, pointer)
        pointers.append(pointer)
    return _commit(registry, ref, target_dir, target, pointers, "artifact.track",
                   replace=replace)


def remove(registry: Registry, ref: Reference, names: list[str]) -> list[Artifact]:
    """Remove artifacts from a model or version by path (one commit; the objects stay in
    the store until gc, and older commits still name them).

    Raises:
        NotFoundError: a name is no artifact of the target (nothing is removed).
        IdentityError: no Git identity to author the commit.
    """
    registry.repo.identity()
    snapshot = registry.snapshot()
    target_dir, target = _target_dir(registry, ref, snapshot)
    for name in names:
        if snapshot.read(_pointer_path(target_dir, name)) is None:
            raise _no_artifact(target, name)
    return _commit(registry, ref, target_dir, target, [], "artifact.remove",
                   removals=list(dict.fromkeys(names)))


def _no_artifact(target: str, name: str) -> NotFoundError:
    return NotFoundError(f"{target} has no artifact {limits.shown(name)!r}; "
                         f"`modelbox artifact list {target}` lists them")


def _commit(
    registry: Registry, ref: Reference, target_dir: str, target: str,
    pointers: list[ArtifactPointer], operation: str, *, replace: bool = False,
    removals: list[str] | None = None,
) -> list[Artifact]:
    """Write ``pointers`` and delete the artifacts named in ``removals``, as one audited
    commit whose trailers say what each path named before and after. Every change to an
    artifact set goes through here."""
    names = [p.path for p in pointers]
    if len({fold(name) for name in names}) != len(names):  # a clone on macOS: one file
        raise InvalidValueError(f"two artifacts would both be called {names}; use --as")
    with registry.transaction() as txn:
        registry.target(txn.snapshot, ref)  # still there, under the lock
        before: list[str | None] = []
        after: list[tuple[str, str | None]] = []
        for pointer in pointers:
            path = _pointer_path(target_dir, pointer.path)
            old = txn.snapshot.read(path)
            if old is not None:
                previous = parse(ArtifactPointer, path, old)
                if previous == pointer or (
                    _same(previous, pointer) and previous.verified == pointer.verified
                ):
                    continue
                if not replace and not _same(previous, pointer):
                    raise ArtifactExistsError(target, pointer.path, _shown(previous))
                before.append(_recorded_as(previous))
            else:
                refuse_case_twin(txn.snapshot, "artifact", path)
                before.append(None)
            txn.put(path, pointer)
            after.append((pointer.path, _recorded_as(pointer)))
        for name in removals or []:
            path = _pointer_path(target_dir, name)
            old = txn.snapshot.read(path)
            if old is None:
                raise _no_artifact(target, name)
            before.append(_recorded_as(parse(ArtifactPointer, path, old)))
            txn.delete(path)
            after.append((name, None))
        if after:
            what = ", ".join(name for name, _ in after)
            txn.change = Change(
                operation, target, f"{operation.replace('.', ' ')} {target} {what}",
                # Before names every changed path (``-``: new) once anything is replaced
                # or removed, so the two lists pair up; after leaves out what is removed.
                before=" ".join(f"{name}={old or '-'}"
                                for (name, _), old in zip(after, before, strict=True))
                if any(before) else None,
                after=" ".join(f"{name}={new}" for name, new in after if new) or None,
            )
    return [Artifact.of(target, p) for p in pointers]


def list_artifacts(registry: Registry, ref: Reference) -> list[Artifact]:
    """The artifacts of a model or version, by path."""
    snap = registry.snapshot()
    path, manifest, target = registry.target(snap, ref)
    via, pinned = "", getattr(manifest, "digest", None)
    if getattr(manifest, "link", None):  # a collection's link: the source's artifacts
        from modelbox.collections import follow, is_checkpoint

        model, version = follow(snap, ref.model, target.rpartition("@")[2])[-1]
        via = target
        path = (layout.checkpoint_file(model, version) if is_checkpoint(snap, model, version)
                else layout.version_file(model, version))
        target = f"{model}@{version}"
    root = f"{path.rsplit('/', 1)[0]}/{ARTIFACTS_DIR}"
    out = []
    for full in releases.pointer_paths(snap, root):
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
    """``root / relative``, refusing anything that would land outside ``root`` or in a
    ``.git`` folder below it (:mod:`modelbox.pathcheck`), or pass a symbolic link."""
    parts = relative.split("/")
    reason = pathcheck.unsafe_path(relative)
    if reason is not None:
        raise ArtifactError(f"refusing to write {relative!r} into {root}: {reason}")
    current = root
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise ArtifactError(f"refusing to write through the symbolic link {current}")
    return current


def get(
    registry: Registry, ref: Reference, dest: Path, *, progress: bool | None = None,
    verify: bool = False, notes: list[str] | None = None,
) -> list[Path]:
    """Download every artifact of a model or version into ``dest``; return what was placed.

    All of it or nothing: every file is downloaded, verified and placed in a hidden folder
    beside the destination, then moved into place (see :mod:`modelbox.objects.staging`).

    A ``dest`` inside the registry's own work tree is listed in ``.git/info/exclude``
    first (:mod:`modelbox.exclude`), so ``git add -A`` never stages the weights. What the
    user should hear about (that exclusion, an unverified tracked file) is appended to
    ``notes``.

    Raises:
        IdentityError: no Git identity to record the download with (nothing is placed).
    """
    from modelbox.objects.external import fetch

    registry.check_download_audit()  # refuse before placing what could not be recorded
    artifacts = list_artifacts(registry, ref)
    said = notes if notes is not None else []
    if registry.repo.root is not None and artifacts:
        from modelbox.exclude import exclude_placed

        exclude = registry.repo.common_dir / "info" / "exclude"
        added = exclude_placed(registry.repo.root, exclude, dest,
                               [(a.path, a.directory) for a in artifacts])
        if added:
            said.append(f"{dest} is inside the registry's work tree: added {' '.join(added)} "
                        f"to {exclude} (never committed), so git add -A leaves the weights out")
    # Opened only when a stored object is wanted: a version with tracked artifacts or none
    # needs no store (a registry read by URL may have none this machine can reach).
    store = (open_registry_store(registry) if any(not a.uri for a in artifacts)
             else None)
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
            assert store is not None
            listing = parse(DirectoryManifest, f"sha256:{artifact.checksum}",
                            store.open_bytes(artifact.checksum))
            files, found = placements(listing, functools.partial(safe_destination, place))
            items.extend(files)
            slots.update(found)
        else:
            items.append((artifact.checksum, artifact.size, place))
    # A listing (or two artifacts, `d` holding `x` and `d/x`) may name one destination
    # twice: refused before anything is placed.
    pathcheck.check_distinct(
        [p.relative_to(dest).as_posix() for p in [*(i[2] for i in items),
                                                   *(t[1] for t in tracked)]],
        f"the artifacts of {ref}")
    # Everything is downloaded and verified beside the destination first, and moved into
    # place only when all of it is: a failed get places nothing.
    with Staging(dest) as stage:
        if store is not None:
            store.get_files(items, progress=progress, verify=verify, slots=slots,
                            stage=stage)
        for artifact, place in tracked:
            fetch(artifact.uri or "", stage.path(place), size=artifact.size,
                  etag=artifact.etag, allowed=allowed, what=_pointer_name(artifact),
                  verified=artifact.verified)
            if not artifact.verified:
                said.append(f"{artifact.parent}/{artifact.path}: placed unverified (tracked "
                            f"with --no-check, no size or checksum was recorded); run "
                            f"`modelbox artifact track {artifact.parent} {artifact.uri} --as "
                            f"{artifact.path}` to record them")
        stage.publish()
    target = artifacts[0].parent if artifacts else str(ref)
    registry.record_event(Change(
        "artifact.download", target, f"download {target} to {dest}",
        after=" ".join(f"{a.path}={a.checksum or a.uri}" for a in artifacts),
    ))
    return [p for _, _, p in items] + [p for _, p in tracked]


__all__ = ["Artifact", "add", "get", "list_artifacts", "remove", "track"]
