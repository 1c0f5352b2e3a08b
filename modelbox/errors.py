"""The one exception tree of modelbox.

Every error modelbox raises on purpose derives from :class:`ModelboxError`. The CLI turns
any of them into one line on stderr and the error's ``exit_code``; anything else is a bug.

    ModelboxError
    ├── InvalidNameError          a name, version or tag breaks a naming rule
    ├── InvalidValueError         a metadata value, option or argument is malformed
    │   ├── VersionNeededError    a bare MODEL where a version is needed (exit 2)
    │   ├── MetricsFileError      a trainer's metrics file is malformed (ingest warns)
    │   └── InUseError            a destructive command would drop tags or leave links
    │                             dangling (pass --force)
    ├── NotFoundError
    │   ├── RegistryNotFoundError no registry at or above the given path
    │   ├── ModelNotFoundError
    │   ├── NamespaceNotFoundError no model in or below it, and no manifest
    │   ├── VersionNotFoundError
    │   ├── TagNotFoundError
    │   └── DanglingTagError      a tag names a version that does not exist
    ├── AlreadyExistsError
    │   ├── ModelExistsError
    │   ├── VersionExistsError
    │   └── ArtifactExistsError   an artifact path is taken (add --replace to replace it)
    ├── TagConflictError          a unique tag already points to another version
    ├── ReleasedVersionError      a released version's artifact set cannot change
    ├── DigestMismatchError       a released version's pointers no longer match its digest
    ├── ManifestError             a file in the registry is not valid JSON or breaks its schema
    ├── RegistryFormatError       the registry was written by an unknown format version
    ├── WorktreeDirtyError        uncommitted edits stand where a command must write
    ├── ReadOnlyRegistryError     a write to a registry read through its URL (clone it)
    ├── ConcurrentUpdateError     another writer held the registry or moved the branch
    ├── GitError                  the Git repository itself could not be read or written
    │   ├── IdentityError         no Git identity to write the audit log's author with
    │   ├── IndexLockedError      another process held .git/index.lock past the wait
    │   ├── MergeConflictError    a pull found both sides changing the same part of a file
    │   │   └── VersionCollisionError  both sides created the same version (a vN, mostly)
    │   ├── MirrorError           the cached mirror of a registry URL is absent or vanished
    │   └── RemoteError           another repository could not be reached, read or written
    │       ├── RemoteMovedError  the remote has commits this clone lacks (pull first)
    │       └── PushRejectedError the server refused some refs of a push
    ├── ArtifactError             an artifact path is missing, unsafe or unreadable
    ├── UnsafePathError           a pulled tree or a listing names a path git would not write
    └── StoreError                the object store failed
        ├── StoreAccessError      missing or refused credentials, no permission
        ├── StoreUnreachableError the store's endpoint cannot be reached
        │   └── StoreTimeoutError  it did not answer in time, retries included
        ├── ObjectMissingError    an object a pointer needs is not in the store
        ├── ObjectCorruptError    an object's bytes do not match its checksum
        ├── ObjectTooLargeError   an object read as a document is larger than its cap
        └── StoreSharedError      gc refused: another registry writes to the same store
"""

from __future__ import annotations

from collections.abc import Mapping

from modelbox.redact import redact

__all__ = [
    "AlreadyExistsError",
    "ArtifactError",
    "ArtifactExistsError",
    "ConcurrentUpdateError",
    "DanglingTagError",
    "DigestMismatchError",
    "GitError",
    "IdentityError",
    "InUseError",
    "IndexLockedError",
    "InvalidNameError",
    "InvalidValueError",
    "ManifestError",
    "MergeConflictError",
    "MetricsFileError",
    "MirrorError",
    "ModelExistsError",
    "ModelNotFoundError",
    "ModelboxError",
    "NamespaceNotFoundError",
    "NotFoundError",
    "ObjectCorruptError",
    "ObjectMissingError",
    "ObjectTooLargeError",
    "PushRejectedError",
    "ReadOnlyRegistryError",
    "RegistryFormatError",
    "RegistryNotFoundError",
    "ReleasedVersionError",
    "RemoteError",
    "RemoteMovedError",
    "StoreAccessError",
    "StoreError",
    "StoreSharedError",
    "StoreTimeoutError",
    "StoreUnreachableError",
    "TagConflictError",
    "TagNotFoundError",
    "UnsafePathError",
    "VersionCollisionError",
    "VersionExistsError",
    "VersionNeededError",
    "VersionNotFoundError",
    "WorktreeDirtyError",
]


class ModelboxError(Exception):
    """Root of every error modelbox raises on purpose.

    Its message never shows a credential: URLs it quotes (a store, a git remote, an
    endpoint) are redacted by :func:`modelbox.redact.redact`.
    """

    exit_code = 1

    def __str__(self) -> str:
        return redact(super().__str__())


class InvalidNameError(ModelboxError):
    """A model name, namespace, version or tag breaks a naming rule."""

    def __init__(self, kind: str, value: str, rule: str) -> None:
        self.kind, self.value, self.rule = kind, value, rule
        super().__init__(f"invalid {kind} {value!r}: {rule}")


class InvalidValueError(ModelboxError):
    """A value given by the user is malformed (metadata JSON, an option, a reference)."""


class VersionNeededError(InvalidValueError):
    """A bare ``MODEL`` where a command needs a version: a usage error (exit 2)."""

    exit_code = 2


class MetricsFileError(InvalidValueError):
    """A metrics file a trainer wrote (``trainer_state.json``, ``metrics.csv``, ...) cannot
    be read; checkpoint ingest prints it as one warning and ingests the checkpoint."""


class InUseError(InvalidValueError):
    """``action`` on ``what`` would remove tags or leave links dangling; the message lists
    them, and ``--force`` (``force=True``) does it anyway."""

    def __init__(self, action: str, what: str, consequences: list[str]) -> None:
        self.action, self.what, self.consequences = action, what, consequences
        super().__init__(
            f"{action} {what} would {' and '.join(consequences)}; pass --force to {action} "
            "it anyway"
        )


class NotFoundError(ModelboxError):
    """Something the user named does not exist."""


class RegistryNotFoundError(NotFoundError):
    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"no modelbox registry at or above {path}; run `modelbox init` to create one "
            "or pass --repo PATH"
        )


class ModelNotFoundError(NotFoundError):
    def __init__(self, model: str) -> None:
        self.model = model
        super().__init__(
            f"model {model} does not exist; `modelbox model list` shows the models there are"
        )


class NamespaceNotFoundError(NotFoundError):
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        super().__init__(
            f"namespace {namespace} does not exist (no model in it or below it, and no owner "
            "set); `modelbox namespace list` shows the namespaces there are"
        )


class VersionNotFoundError(NotFoundError):
    """``hint`` replaces the usual next step (a "did you mean" from the resolver)."""

    def __init__(self, model: str, version: str, *, hint: str | None = None) -> None:
        self.model, self.version = model, version
        super().__init__(
            f"version {model}@{version} does not exist; "
            + (hint or f"`modelbox version list {model}` shows its versions")
        )


class TagNotFoundError(NotFoundError):
    """``hint`` replaces the usual next step (a "did you mean" from the resolver)."""

    def __init__(self, model: str, tag: str, *, hint: str | None = None) -> None:
        self.model, self.tag = model, tag
        super().__init__(
            f"tag {model}:{tag} is not assigned; "
            + (hint or f"`modelbox model show {model}` lists its tags")
        )


class DanglingTagError(NotFoundError):
    """A tag map names a version that does not exist (a hand edit or a bad merge)."""

    def __init__(self, model: str, tag: str, version: str) -> None:
        self.model, self.tag, self.version = model, tag, version
        super().__init__(
            f"tag {model}:{tag} points to {version}, which does not exist; move it with "
            f"`modelbox tag {model}@VERSION {tag}` or remove it with `modelbox untag {model} "
            f"{tag}` (`modelbox check` lists every such tag)"
        )


class AlreadyExistsError(ModelboxError):
    """Something the user asked to create exists already."""


class ModelExistsError(AlreadyExistsError):
    def __init__(self, model: str) -> None:
        self.model = model
        super().__init__(f"model {model} already exists")


class VersionExistsError(AlreadyExistsError):
    def __init__(self, model: str, version: str) -> None:
        self.model, self.version = model, version
        super().__init__(f"version {model}@{version} already exists; choose another version")


class ArtifactExistsError(AlreadyExistsError):
    """An artifact path of a model or version is taken by other content."""

    def __init__(self, target: str, path: str, recorded: str, option: str = "--replace") -> None:
        self.target, self.path, self.recorded = target, path, recorded
        super().__init__(
            f"{target} already has an artifact {path} ({recorded}); add {option} to replace "
            "it, or choose another name with --as"
        )


class TagConflictError(ModelboxError):
    def __init__(self, model: str, tag: str, version: str) -> None:
        self.model, self.tag, self.version = model, tag, version
        super().__init__(
            f"{model}:{tag} already points to {version}; "
            f"run `modelbox tag {model}@NEW {tag}` to move it"
        )


class ReleasedVersionError(ModelboxError):
    """A write would change the artifact set of a released (frozen) version."""

    def __init__(self, target: str, by: str) -> None:
        self.target, self.by = target, by
        model, _, _ = target.rpartition("@")
        super().__init__(
            f"{target} was released by {by}: its artifacts are frozen; make a new version "
            f"with `modelbox version create {model} NEW --from {target}` and change that"
        )


class DigestMismatchError(ModelboxError):
    """A released version's pointers no longer hash to the digest its release recorded."""

    def __init__(self, target: str, recorded: str, actual: str, via: str = "") -> None:
        self.target, self.recorded, self.actual = target, recorded, actual
        through = f" (through {via})" if via else ""
        super().__init__(
            f"{target}{through}: its artifacts no longer match the released digest "
            f"(recorded {recorded}, now {actual}); refused before anything is placed; restore its "
            "pointers with git (`modelbox check` lists them)"
        )


class ManifestError(ModelboxError):
    """A file in the registry is not valid JSON or does not match its schema."""

    def __init__(self, path: str, problem: str) -> None:
        self.path, self.problem = path, problem
        super().__init__(f"{path}: {problem}")


class RegistryFormatError(ModelboxError):
    """The registry was written by a modelbox that uses another format version."""


class WorktreeDirtyError(ModelboxError):
    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"{path} has uncommitted changes that this command would overwrite; "
            f"commit them or discard them with `git checkout -- {path}`"
        )


class ReadOnlyRegistryError(ModelboxError):
    """A write to a registry opened by URL: it is read through a cached mirror."""

    def __init__(self, url: str, command: str | None = None) -> None:
        self.url = url
        what = (f"`modelbox {command}` works on a clone, not through a URL;" if command
                else f"{redact(url)} is opened by URL, which is read-only; to change it,")
        super().__init__(
            f"{what} clone it with `modelbox clone {redact(url)} DIR` and work in DIR"
        )


class ConcurrentUpdateError(ModelboxError):
    """Another writer held the registry lock too long or moved the branch underneath us."""


class GitError(ModelboxError):
    """The Git repository could not be read or written."""


class IdentityError(GitError):
    """No Git identity (user.email / GIT_AUTHOR_EMAIL / EMAIL): git refuses to commit too."""

    def __init__(self) -> None:
        super().__init__(
            'no Git identity: run git config --global user.name "Your Name" and '
            "git config --global user.email you@example.com (git refuses to commit "
            "without one too)"
        )


class IndexLockedError(GitError):
    """Another process (a plain ``git status``, an IDE) held ``index.lock`` past the wait."""

    def __init__(self, lock: str, seconds: float) -> None:
        self.lock, self.seconds = lock, seconds
        super().__init__(
            f"{lock} was held by another process for {seconds:g} s; if no git command is "
            "running, delete it"
        )


class MirrorError(GitError):
    """The cached mirror of a registry URL is missing (``--offline``) or was deleted while a
    command read it."""


class RemoteError(GitError):
    """The other repository could not be reached, read or written."""


class RemoteMovedError(RemoteError):
    """The remote's branch (or audit chain) has commits this clone does not have."""

    def __init__(self, url: str, ref: str) -> None:
        self.url, self.ref = url, ref
        super().__init__(
            f"push rejected: {ref} on {url} has changes you do not have yet; "
            "run `modelbox pull`, then `modelbox push` again"
        )


class PushRejectedError(RemoteError):
    """The server refused some of the refs a push sent."""

    def __init__(self, url: str, statuses: Mapping[str, str]) -> None:
        self.url, self.statuses = url, dict(statuses)
        what = "; ".join(f"{ref}: {why}" for ref, why in sorted(statuses.items()))
        super().__init__(
            f"push to {url} rejected ({what}); run `modelbox pull`, then `modelbox push` again"
        )


class MergeConflictError(GitError):
    """Both sides changed the same part of the same file; a person has to merge."""

    def __init__(self, url: str, branch: str, paths: list[str]) -> None:
        self.url, self.branch, self.paths = url, branch, paths
        super().__init__(
            f"cannot merge {branch} from {url}: both sides changed {', '.join(paths)}; "
            f"nothing was changed here. Merge by hand with `git pull`, then run "
            f"`modelbox check --fix`"
        )


class VersionCollisionError(MergeConflictError):
    """Both sides created the same version: ``vN`` numbers are taken per clone, so two
    clones that each ran ``version create M`` meet here (``docs/collaboration.md``)."""

    def __init__(self, url: str, branch: str, paths: list[str], versions: list[str],
                 remedy: str) -> None:
        self.url, self.branch, self.paths, self.versions = url, branch, paths, versions
        GitError.__init__(
            self,
            f"cannot merge {branch} from {url}: {', '.join(versions)} was created both here "
            f"and there (version numbers are taken per clone and never renumbered); nothing "
            f"was changed here. {remedy}",
        )


class ArtifactError(ModelboxError):
    """An artifact path is missing, unreadable, or would escape its destination."""


class UnsafePathError(ModelboxError):
    """A tree from a remote or a folder listing names a path that may not be written
    (``..``, ``.git``, absolute, a symbolic link...): the rules of :mod:`modelbox.pathcheck`."""

    def __init__(self, source: str, path: str, reason: str) -> None:
        self.source, self.path, self.reason = source, path, reason
        shown = path.encode("unicode_escape").decode("ascii")
        shown = shown if len(shown) <= 200 else f"{shown[:200]}..."
        super().__init__(
            f"refusing {source}: the path '{shown}' may not be written ({reason}); "
            "nothing was changed. Ask whoever wrote it to remove it"
        )


class StoreError(ModelboxError):
    """The object store failed."""


class StoreAccessError(StoreError):
    """The store refused us: missing or wrong credentials, or no permission."""


class StoreUnreachableError(StoreError):
    """The store's endpoint could not be reached."""


class StoreTimeoutError(StoreUnreachableError):
    """The store's endpoint accepted no connection, or sent nothing, within the timeout, on
    every attempt."""

    def __init__(self, endpoint: str, what: str, seconds: float, attempts: int) -> None:
        self.endpoint, self.seconds, self.attempts = endpoint, seconds, attempts
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        super().__init__(
            f"the store at {endpoint} did not {what} within {seconds:g} s ({tries}); "
            "check that the endpoint is up and reachable (AWS_ENDPOINT_URL for S3), or "
            "raise MODELBOX_STORE_CONNECT_TIMEOUT, MODELBOX_STORE_READ_TIMEOUT or "
            "MODELBOX_STORE_ATTEMPTS"
        )


class ObjectMissingError(StoreError):
    def __init__(self, digest: str, store: str) -> None:
        self.digest, self.store = digest, store
        super().__init__(f"object sha256:{digest} is missing from the store {store}")


class ObjectCorruptError(StoreError):
    def __init__(self, digest: str, where: str, actual: str) -> None:
        self.digest, self.where, self.actual = digest, where, actual
        super().__init__(
            f"object sha256:{digest} at {where} is corrupt (its content hashes to "
            f"sha256:{actual}); delete it and upload it again"
        )


class ObjectTooLargeError(StoreError):
    """A pointer names an object as a document (a directory listing) that is too large to be
    one; it was refused after reading at most ``limit + 1`` bytes."""

    def __init__(self, digest: str, where: str, what: str, limit: int) -> None:
        self.digest, self.where, self.what, self.limit = digest, where, what, limit
        super().__init__(
            f"object sha256:{digest} at {where} is larger than the {limit // (1024 * 1024)} "
            f"MiB a {what} may have, so it is not one; the pointer naming it is wrong: "
            "restore it with git or add the artifact again"
        )


class StoreSharedError(StoreError):
    """gc refused: another registry writes to the store, so gc cannot see its pointers."""

    def __init__(self, store: str, registry: str, where: str, written: str) -> None:
        self.store, self.registry, self.where = store, registry, where
        super().__init__(
            f"the store {store} is also used by another registry (root commit "
            f"{registry[:12] or 'unknown'}, clone {where}, last write {written}); gc cannot see "
            "what that registry references and would delete its objects. Run gc with "
            "--i-own-this-store only if that registry is gone or uses its own store now"
        )
