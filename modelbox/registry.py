"""The registry: models, versions and unique tags stored as manifests on a Git branch.

Reads come from the registry branch's committed tree (the source of truth), never from the
work tree. Every write takes the repository lock, reads the branch head, builds one commit
and moves the branch with compare-and-swap; then the work tree, the index and the derived
tag refs follow. A write that fails before the branch moves leaves nothing behind; one cut
short after it (``kill -9``) is finished by the next write (the journal of
:mod:`modelbox.recovery`, written before the branch moves).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelbox import audit, collisions, layout, limits, recovery, releases
from modelbox.audit import AuditEvent, Change, TagMove
from modelbox.documents import Settings, parse_settings, parse_tags
from modelbox.errors import (
    AlreadyExistsError,
    GitError,
    IndexLockedError,
    InUseError,
    InvalidNameError,
    InvalidValueError,
    ModelboxError,
    ModelExistsError,
    ModelNotFoundError,
    RegistryNotFoundError,
    TagConflictError,
    TagNotFoundError,
    VersionExistsError,
    VersionNotFoundError,
    WorktreeDirtyError,
)
from modelbox.faults import fault
from modelbox.frameworks import MLFramework
from modelbox.names import (
    RESERVED_TAGS,
    ModelName,
    Reference,
    check_branch,
    check_segment,
    fold,
    parse_model,
    parse_namespace,
)
from modelbox.opening import find_settings
from modelbox.refs import GitRepo, PathChange, Snapshot, locked, maintenance, user_identity

if TYPE_CHECKING:
    from modelbox.manifests import (
        CheckpointManifest,
        ExperimentManifest,
        MetricPoint,
        MetricSeries,
        ModelManifest,
        Release,
        VersionManifest,
    )
    from modelbox.refs import CommitRecord, History, Worktree
    from modelbox.refs.filelog import Change as FileChange
    from modelbox.series_text import Series, SeriesCache

    Manifest = ModelManifest | VersionManifest | ExperimentManifest | CheckpointManifest

# pydantic (``modelbox.manifests``) is imported inside the methods that need it: a bare
# `modelbox resolve` must start in well under 0.25 s and pydantic alone costs ~0.1 s.

__all__ = ["AUDIT_REF", "Registry", "Transaction"]

AUDIT_REF = "refs/modelbox/audit"
_UNTOUCHED = object()  # a path a transaction did not write
#: Checkpoint changes an experiment policy is not evaluated after: archiving or restoring
#: by hand (a restore must not be undone by the same command) and a promotion.
_NO_POLICY_OPERATIONS = frozenset({"checkpoint.archive", "checkpoint.restore",
                                   "checkpoint.promote"})

logger = logging.getLogger(__name__)


@dataclass
class _Batch:
    """Commits staged under one lock, published together."""

    base: str | None
    head: str | None = None
    ref_old: str | None = None  # the written branch's value (None: the batch creates it)
    subject: str = ""
    records: list[CommitRecord] = field(default_factory=list)
    # models whose _tags.json changed; model -> version folders changed (a tag ref points
    # at a version's tree, so those move a ref only if a tag names the version)
    tag_models: set[str] = field(default_factory=set)
    versions: dict[str, set[str]] = field(default_factory=dict)
    # path -> its content sha at the batch's base (what the work tree still holds) ...
    original: dict[str, str | None] = field(default_factory=dict)
    # ... and at the batch's head: the publish moves these without diffing wide trees
    final: dict[str, str | None] = field(default_factory=dict)
    # metrics journal -> the last line its commits hold (recorded in the branch-move record)
    absorbs: dict[str, int] = field(default_factory=dict)
    # (experiment, checkpoint) pairs whose folder a commit of the batch changed: the
    # experiment's policy is evaluated for them before the batch is published
    checkpoints: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class Transaction:
    """The staged writes of one command, read from the branch head under the lock."""

    snapshot: Snapshot
    writes: dict[str, bytes | None] = field(default_factory=dict)
    change: Change | None = None
    #: series documents written through Registry.write_series: path -> (the Series, the
    #: bytes staged for it, None when unchanged), cached once the commit is staged
    series: dict[str, tuple[Series, bytes | None]] = field(default_factory=dict)

    def put(self, path: str, document: Any) -> None:
        """Stage a document (anything with ``to_bytes()``) to be written at ``path``.

        The last guard before a commit: a path no clone could write (too long) or text
        that is not valid Unicode is refused here, before anything is written.
        """
        problem = limits.path_problem(path)
        if problem:
            raise InvalidNameError("path", limits.shown(path, 80), problem)
        try:
            data = document.to_bytes()
        except UnicodeEncodeError as exc:
            bad = exc.object[exc.start : exc.end].encode("unicode_escape").decode("ascii")
            raise InvalidValueError(
                f"{path}: holds text that is not valid UTF-8 ({bad}); give the value in UTF-8"
            ) from None
        kind = str(getattr(document, "kind", ""))
        cap = limits.CAPS.get(kind)
        if cap is not None and len(data) > cap:  # a document no reader would accept
            raise InvalidValueError(
                f"{path}: the {kind} document would be {len(data)} bytes, more than the "
                f"{cap // (1024 * 1024) or 1} MiB every reader accepts; keep large data in "
                "artifacts, not in metadata"
            )
        self.writes[path] = data

    def delete(self, path: str) -> None:
        self.writes[path] = None


class Registry:
    """A modelbox registry inside a Git repository."""

    def __init__(self, repo: GitRepo, settings: Settings) -> None:
        self.repo = repo
        self.settings = settings
        self._history: History | None = None
        self._worktree: Worktree | None = None
        self._batch: _Batch | None = None
        self._target: str | None = None
        #: what experiment policies decided in this registry's writes so far
        #: (:class:`modelbox.autopromote.Decision`), for a command to report
        self.decisions: list[Any] = []
        self._series: SeriesCache | None = None  # see read_series
        self._git_tags: tuple[str, bool] | None = None  # see git_tags_on

    @property
    def history(self) -> History:
        """The branch's commits read as audit records (made on first use: a read such as
        `resolve` never loads the history walker)."""
        if self._history is None:
            from modelbox.refs.history import History

            self._history = History(self.repo)
        return self._history

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path | None = None) -> Registry:
        """The registry at or above ``path`` (default: the current directory)."""
        start = (path or Path.cwd()).resolve()
        repo = GitRepo.discover(start)
        if repo is None:
            raise RegistryNotFoundError(str(start))
        settings = find_settings(repo)
        if settings is None:
            raise RegistryNotFoundError(str(start))
        return cls(repo, settings)

    @classmethod
    def init(cls, path: Path, *, store: str | None = None, branch: str | None = None,
             git_tags: bool = False) -> Registry:
        """Create a registry in ``path`` (a new or existing Git repository).

        ``branch`` and ``store`` are checked before anything is created: a store URL must
        carry no credentials (it is committed); a relative store folder is stored relative
        to the registry root, which is what it is resolved against when read.
        """
        if branch is not None:
            check_branch(branch)
        if store is not None:
            store = _store_setting(path, store)
        repo = GitRepo.discover(path) if path.exists() else None
        if repo is None or (repo.root and repo.root.resolve() != path.resolve()):
            user_identity()  # init commits: no identity, nothing created (git refuses too)
            repo = GitRepo.init(path, branch or "main")
        else:
            repo.identity()
        branch = check_branch(branch or repo.head_branch() or "main")
        head = repo.ref(f"refs/heads/{branch}")
        if head and repo.snapshot(head).read(layout.SETTINGS) is not None:
            raise AlreadyExistsError(f"{path} is already a modelbox registry")
        from modelbox.manifests import RegistrySettings

        registry = cls(repo, Settings(branch=branch, store=store, git_tags=git_tags))
        with registry.transaction() as txn:
            txn.put(layout.SETTINGS, RegistrySettings(branch=branch, store=store,
                                                      git_tags=git_tags))
            # A random id makes every registry's root commit unique, even two inits by
            # one identity in one second: gc tells registries sharing a store apart by it.
            txn.change = Change("registry.init", ".", "init modelbox registry",
                                after=f"registry {uuid.uuid4().hex}")
        return registry

    def close(self) -> None:
        if self._worktree is not None:
            self._worktree.close()
        self.repo.close()

    @property
    def branch(self) -> str:
        return self.settings.branch

    @property
    def target_branch(self) -> str | None:
        """The branch commands read and write instead of the registry branch (a proposal).

        None means the registry branch. A target branch that does not exist yet reads as
        the registry branch and is created from its head by the first write. Tag refs
        mirror the registry branch only, so writes to a target branch leave them alone.
        """
        return self._target

    @target_branch.setter
    def target_branch(self, branch: str | None) -> None:
        if branch is not None:
            if branch.startswith("refs/heads/"):
                branch = branch[len("refs/heads/") :]
            check_branch(branch)
        self._target = None if branch == self.branch else branch

    @property
    def branch_ref(self) -> str:
        """The branch commands read and write: the registry branch or the target branch."""
        return f"refs/heads/{self._target or self.branch}"

    def git_tags_on(self) -> bool:
        """Whether the registry branch, as it is now, has the ``git_tags`` setting on (GTO
        tags, :mod:`modelbox.gittags`, imported only then)."""
        head = self.registry_head()
        if head is None:
            return False
        if self._git_tags is None or self._git_tags[0] != head:  # asked twice a publish
            data = self.repo.snapshot(head).read(layout.SETTINGS)
            on = data is not None and parse_settings(layout.SETTINGS, data).git_tags
            self._git_tags = (head, on)
        return self._git_tags[1]

    def registry_head(self) -> str | None:
        """The registry branch's commit, whatever the target branch."""
        return self.repo.ref(f"refs/heads/{self.branch}")

    def head(self) -> str | None:
        """The branch's commit (inside a batch: its newest staged commit)."""
        if self._batch is not None:
            return self._batch.head
        head = self.repo.ref(self.branch_ref)
        if head is None and self._target is not None:
            return self.registry_head()  # a new proposal starts at the registry branch
        return head

    def snapshot(self) -> Snapshot:
        return self.repo.snapshot(self.head())

    # -- writing -------------------------------------------------------------------------
    def worktree(self) -> Worktree | None:
        """The work tree when the branch written is checked out, else None."""
        branch = self._target or self.branch
        if self.repo.root is None or self.repo.head_branch() != branch:
            return None
        if self._worktree is None:
            from modelbox.refs.worktree import Worktree

            self._worktree = Worktree(self.repo, self.repo.root)
        return self._worktree

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group writes: each is still its own commit, but they are published together.

        The lock is held for the whole block, new objects are written once (one pack when
        there are many), the branch moves once with compare-and-swap, and the work tree,
        index and tag refs follow once. It is all or nothing: if the block raises, nothing
        is published. A single command is a batch of one. Nested batches join the outer.
        """
        if self._batch is not None:
            yield
            return
        self.repo.identity()  # every write is an audited commit: refuse before any lock
        published = False
        with locked(self.repo.git_dir):
            recovery.recover(self)  # finish a write that was cut short before starting one
            worktree = self.worktree()
            if worktree is not None:  # where the batch will land: its index, read meanwhile
                worktree.prefetch()
            self._batch = _Batch(base=self.head(), ref_old=self.repo.ref(self.branch_ref))
            self._batch.head = self._batch.base
            self.repo.hold_objects()
            try:
                # Metric points a process that ended left in its journal go in first
                # (registry branch only; a proposal branch is not where they were logged).
                taking: contextlib.AbstractContextManager[list[recovery.TakenJournal]] = (
                    recovery.metrics_taken(self) if self._target is None
                    else contextlib.nullcontext([]))
                with taking as taken:
                    yield
                    self._after_checkpoints(self._batch)
                    published = self._publish(self._batch)
                    for journal in taken:
                        journal.remove()
            finally:
                self._batch = None
                self.repo.discard_pending()
        if published:  # outside the lock: the maintenance it may start needs it
            maintenance.after_write(self.repo)

    def _after_checkpoints(self, batch: _Batch) -> None:
        """Evaluate the experiment policies of the checkpoints the batch changed (their
        decisions are commits of this same batch: they land with the change or not at all).
        The decisions' own commits change checkpoints too; they are not evaluated again."""
        if not batch.checkpoints or self._target is not None:
            return
        from modelbox.autopromote import after_checkpoint

        touched, batch.checkpoints = sorted(batch.checkpoints), set()
        for experiment, checkpoint in touched:
            self.decisions += after_checkpoint(self, parse_model(experiment), checkpoint)
        batch.checkpoints.clear()

    @property
    def in_batch(self) -> bool:
        """Whether this process is inside a batch of this registry (not yet published)."""
        return self._batch is not None

    def absorb_journal(self, name: str, last: int) -> None:
        """Record that the current batch commits the metrics journal ``name`` up to line
        ``last`` (written into the branch-move record, see :mod:`modelbox.recovery`)."""
        if self._batch is None:
            raise GitError("internal error: a journal is absorbed inside a batch")
        self._batch.absorbs[name] = last

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Stage writes in the block; on a clean exit they become one audited commit."""
        with self.batch():
            batch = self._batch
            assert batch is not None
            txn = Transaction(self.repo.snapshot(batch.head))
            yield txn
            if txn.writes:
                if txn.change is None:
                    raise GitError("internal error: a write without an audit record")
                self._stage_commit(batch, txn)
            self._keep_series(txn, batch)
            # Staged: the blobs hold the data now, and let it go once they are written
            # (a 60 MB series document need not live on through the publish).
            txn.writes = {}

    def read_series(self, txn: Transaction, path: str) -> Series | None:
        """The metric series document at ``path`` as ``txn`` sees it, as a
        :class:`~modelbox.series_text.Series` to append to (None: a document of a shape
        only the general path writes). The one this registry last wrote there is handed
        over without reading anything while the blob there is still the one it wrote: a
        watcher's checkpoints and a callback's journal flushes cost what they add, not the
        run's whole history."""
        from modelbox.series_text import load

        series = self._series_cache().take(path, txn.snapshot.blob_id(path))
        if series is None:
            series = load(path, txn.snapshot.read(path))
        return series

    def _series_cache(self) -> SeriesCache:
        if self._series is None:  # (pydantic: not imported by the commands that only read)
            from modelbox.series_text import SeriesCache

            self._series = SeriesCache()
        return self._series

    def write_series(self, txn: Transaction, path: str, series: Series, *,
                     changed: bool = True) -> None:
        """Stage ``series`` (from :meth:`read_series`) at ``path`` (unless not ``changed``);
        it is kept for the next :meth:`read_series` once the commit is staged."""
        from modelbox.series_text import Encoded

        data = None
        if changed:
            txn.put(path, Encoded(series.to_bytes()))
            data = txn.writes[path]
        txn.series[path] = (series, data)

    def _keep_series(self, txn: Transaction, batch: _Batch) -> None:
        """Keep each series ``txn`` wrote whole, under the id of the blob now staged at its
        path. Not one whose path the transaction then wrote something else to, nor any
        when it failed (this is not reached): the cache holds only what the blob holds."""
        if not txn.series:
            return
        staged = self.repo.snapshot(batch.head) if batch.head else None
        for path, (series, data) in txn.series.items():
            if txn.writes.get(path, _UNTOUCHED) is (_UNTOUCHED if data is None else data):
                self._series_cache().keep(path, series, staged.blob_id(path) if staged else None)
        txn.series = {}  # (it holds the bytes too)

    def _stage_commit(self, batch: _Batch, txn: Transaction) -> None:
        from modelbox.refs.history import CommitRecord

        assert txn.change is not None
        releases.guard(txn.snapshot, txn.writes)  # a released version's artifacts are frozen
        old_tree = txn.snapshot.tree
        new_tree, changes = self.repo.build_tree_changes(old_tree, txn.writes)
        if new_tree == old_tree:
            return
        worktree = self.worktree()
        if worktree is not None:
            # What the work tree holds is the batch's base, not the previous staged commit.
            moves = [PathChange(c.path, batch.original.get(c.path, c.old_sha), c.new_sha)
                     for c in changes]
            try:
                worktree.check_clean(moves)
            except WorktreeDirtyError:
                # Not a hand edit but an index left behind by a write cut short (an older
                # modelbox kept no journal): finish it, then look again.
                lag = recovery.lagging(self)
                if lag is None or batch.head != batch.base:
                    raise
                lag.tag_refs = []  # the staged commits are not published: refs wait
                recovery.finish(self, lag)
                worktree.check_clean(moves)
        for change in changes:
            batch.original.setdefault(change.path, change.old_sha)
            batch.final[change.path] = change.new_sha
        parents = [batch.head] if batch.head else []
        message = txn.change.message()
        try:  # names, keys and values reach the message: the last guard before a commit
            message.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = message[exc.start : exc.end].encode("unicode_escape").decode("ascii")
            raise InvalidValueError(
                f"{txn.change.target}: a name or key holds text that is not valid UTF-8 "
                f"({bad}); give it in UTF-8"
            ) from None
        sha = self.repo.write_commit(
            tree=new_tree, parents=parents, message=message, author=self.repo.identity()
        )
        commit = self.repo.commit_info(sha)
        batch.records.append(CommitRecord(
            sha, tuple(parents), self.repo.identity(), commit.author_time,
            commit.author_timezone, message,
        ))
        for c in changes:
            if c.path.startswith(layout.MODELS + "/"):
                folder, _, rest = c.path[len(layout.MODELS) + 1 :].partition("/_")
                model = str(parse_model(folder))
                if rest.startswith(layout.VERSIONS_DIR[1:] + "/"):
                    version = rest[len(layout.VERSIONS_DIR) :].split("/", 1)[0]
                    batch.versions.setdefault(model, set()).add(version)
                else:
                    batch.tag_models.add(model)  # _tags.json, or anything else: sync it
            elif (c.path.startswith(layout.EXPERIMENTS + "/")
                  and txn.change.operation not in _NO_POLICY_OPERATIONS):
                folder, sep, rest = c.path[len(layout.EXPERIMENTS) + 1 :].partition(
                    "/" + layout.CHECKPOINTS_DIR + "/")
                checkpoint = rest.split("/", 1)[0]
                if sep and checkpoint:
                    batch.checkpoints.add((folder, checkpoint))
        batch.head = sha
        batch.subject = txn.change.subject

    def _publish(self, batch: _Batch) -> bool:
        """Write the batch's objects, move the branch, bring the work tree, index and tag
        refs along; False if there was nothing to publish."""
        if batch.head == batch.base or batch.head is None:
            return False
        self.repo.flush_pending()
        count = len(batch.records)
        what = batch.subject if count == 1 else f"{count} changes"
        models = [] if self._target is not None else self._tag_ref_models(batch)
        if self._target is None and self.settings.git_tags:
            # A new version gets its GTO registration tag even untagged (docs/gto.md).
            models = sorted({*models, *batch.versions})
        git_dir = self.repo.git_dir
        recovery.begin(git_dir, recovery.BranchMove(
            self.branch_ref, batch.ref_old, batch.head, tag_refs=models,
            absorbs=batch.absorbs))
        self.repo.update_ref(self.branch_ref, batch.ref_old, batch.head, f"modelbox: {what}")
        # Landed: the metrics journals it absorbs say so themselves before the record goes.
        recovery.mark_absorbed(git_dir, batch.absorbs)
        fault("after-ref-move")
        worktree = self.worktree()
        followed = True
        if worktree is not None:
            try:
                worktree.apply(_batch_moves(batch))
            except IndexLockedError as exc:
                # The change has landed: say so, and leave the journal for the next write.
                followed = False
                logger.warning("modelbox: warning: %s; the index and work tree will be "
                               "brought up to date by the next modelbox write (or "
                               "`modelbox check --fix`)", exc)
        self.history.remember(batch.records)
        fault("before-tag-refs")
        fresh = None
        if self.git_tags_on():  # what the GTO tags' notes tell apart
            from modelbox import gittags

            fresh = {model: set(versions) for model, versions in batch.versions.items()}
            for model in batch.tag_models:
                fresh.setdefault(model, set()).add(gittags.TAGS_CHANGED)
        # The models whose tag maps no commit of the batch wrote (a tagged version's
        # manifest or metrics changed): their refs keep the times they carry. Those whose
        # maps it wrote date what moved from the batch's own commits.
        from modelbox import tagtimes

        maps_of = {model: layout.tags_file(parse_model(model)) for model in models}
        stable = {model for model, path in maps_of.items() if path not in batch.final}
        recent: dict[str, tuple[list[FileChange], str | None]] = {}
        maps = (tagtimes.recent(self.repo, [r.sha for r in reversed(batch.records)])
                if len(stable) < len(models) else None)
        if maps is not None:
            recent = {model: (maps[path], batch.original.get(path))
                      for model, path in maps_of.items() if path in maps}
        if (self.follow_tag_refs(models, fresh=fresh, stable=stable, recent=recent)
                and followed):
            recovery.clear(git_dir)
        if (self._target is None and batch.base is not None
                and not any(map(tagtimes.is_tag_map, batch.final))):
            tagtimes.advance(self.repo, batch.base, batch.head)
        return True

    def _tag_ref_models(self, batch: _Batch) -> list[str]:
        """The models whose tag refs the batch may move: a changed ``_tags.json`` (or model
        folder), or a changed version folder that a tag at the batch's head names. A batch
        of 20,000 new untagged versions syncs no refs instead of 5,000 models' refs."""
        models = set(batch.tag_models)
        snap = self.repo.snapshot(batch.head)
        for model, versions in batch.versions.items():
            if model in models:
                continue
            name = parse_model(model)
            if not snap.exists(layout.tags_file(name)):
                continue
            try:
                tagged = set(self._tags(snap, name).values())
            except ModelboxError:  # unreadable (a hand edit): the sync reports it
                tagged = versions
            if versions & tagged:
                models.add(model)
        return sorted(models)

    def recover(self) -> list[str]:
        """Finish a write that was cut short (``check --fix``): a pending journal, or an
        index that lags the branch without one. Returns paths left alone (hand edits)."""
        with locked(self.repo.git_dir):
            skipped = recovery.recover(self)
            lag = recovery.lagging(self)
            if lag is not None:
                skipped += recovery.finish(self, lag)[0]
        return skipped

    def follow_tag_refs(self, models: Iterable[str] | str,
                        fresh: dict[str, set[str]] | None = None,
                        stable: Collection[str] = (),
                        recent: Mapping[str, tuple[list[FileChange], str | None]]
                        | None = None) -> bool:
        """Rebuild the tag refs of ``models`` (or all, ``recovery.ALL``) from the registry
        branch, and their GTO tags when the ``git_tags`` setting is on (``fresh``: the
        versions the write changed, for its notes); the caller holds the lock. ``stable``:
        models whose tag maps the write did not change, whose refs' dates are taken from
        the refs themselves where they still name the same versions (no history walk).
        ``recent``: model -> the write's own changes of its tag map (newest first) and the
        map's blob before them (:func:`modelbox.tagtimes.write_times`): a tag they moved
        is dated by them, one they left by its ref (no history walk either).
        False (and a warning) if a ref is locked by another process: the change has
        landed, the refs wait for the next write."""
        recent = recent or {}
        try:
            if models == recovery.ALL:
                # A collision of two tags' ref paths is for `check` to report, not a
                # reason to refuse every write until it is fixed.
                with contextlib.suppress(InvalidValueError):
                    self._sync_all_refs()
                chosen = None
            else:
                chosen = list(models)
                snapshot = self.repo.snapshot(self.registry_head())
                names = [parse_model(model) for model in chosen]
                history = self._tag_map_history(snapshot, [
                    name for name in names if str(name) not in stable
                    and str(name) not in recent])
                for name in names:
                    self._sync_model_refs(snapshot, name, history,
                                          keep_times=str(name) in stable,
                                          recent=recent.get(str(name)))
            if self.git_tags_on():
                from modelbox import gittags

                gittags.reconcile(self, chosen, fresh=fresh, quiet=chosen is None)
        except GitError as exc:
            logger.warning("modelbox: warning: %s; the tag refs will be brought up to date "
                           "by the next modelbox write (or `modelbox check --fix`)", exc)
            return False
        return True

    # -- reading -------------------------------------------------------------------------
    def _model(self, snap: Snapshot, model: ModelName) -> ModelManifest:
        from modelbox.manifests import ModelManifest, parse

        path = layout.model_file(model)
        data = snap.read(path)
        if data is None:
            raise ModelNotFoundError(str(model))
        return parse(ModelManifest, path, data)

    def _version(self, snap: Snapshot, model: ModelName, version: str) -> VersionManifest:
        from modelbox.manifests import VersionManifest, parse

        path = layout.version_file(model, version)
        data = snap.read(path)
        if data is None:
            self._model(snap, model)
            raise VersionNotFoundError(str(model), version)
        return parse(VersionManifest, path, data)

    def _tags(self, snap: Snapshot, model: ModelName) -> dict[str, str]:
        path = layout.tags_file(model)
        data = snap.read(path)
        return {} if data is None else parse_tags(path, data)

    def get_model(self, model: ModelName) -> ModelManifest:
        return self._model(self.snapshot(), model)

    def get_version(self, model: ModelName, version: str) -> VersionManifest:
        return self._version(self.snapshot(), model, version)

    def tags(self, model: ModelName) -> dict[str, str]:
        snap = self.snapshot()
        self._model(snap, model)
        return self._tags(snap, model)

    def list_models(self, namespace: str | None = None) -> list[ModelManifest]:
        """Every model, or those in ``namespace`` and the namespaces below it."""
        return self._list_models(self.snapshot(), namespace)

    def _list_models(self, snap: Snapshot, namespace: str | None = None) -> list[ModelManifest]:
        from modelbox.listing import model_manifests

        return model_manifests(snap, namespace)

    def list_versions(self, model: ModelName, *, archived: bool = False) -> list[VersionManifest]:
        """The model's versions, oldest first; archived ones only when asked."""
        return self.versions_in(self.snapshot(), model, archived=archived)

    def versions_in(self, snap: Snapshot, model: ModelName, *, archived: bool = False,
                    ) -> list[VersionManifest]:
        """:meth:`list_versions` as ``snap`` has them."""
        self._model(snap, model)
        out = []
        for name, is_dir in snap.listdir(layout.versions_dir(model)):
            if is_dir:
                manifest = self._version(snap, model, name)
                if archived or not manifest.archived:
                    out.append(manifest)
        return sorted(out, key=lambda v: (v.created_at, v.version))

    def resolve(self, ref: Reference) -> str:
        """The version a reference names (see :mod:`modelbox.resolver`, the one resolver)."""
        from modelbox import resolver

        return resolver.resolve_version(self.snapshot(), ref)

    def resolve_at(self, ref: Reference, when: datetime) -> str | None:
        """The version that carried ``MODEL:TAG`` at ``when`` (None if no version did)."""
        event = self.tag_event_at(ref, when)
        return None if event is None else event.after

    def tag_event_at(self, ref: Reference, when: datetime) -> AuditEvent | None:
        """The last move of ``MODEL:TAG`` at or before ``when``, moves made outside
        modelbox included (a plain ``git commit`` of ``_tags.json``); None if none."""
        if ref.tag is None:
            raise InvalidValueError(f"--at needs MODEL:TAG, not {ref}")
        target = str(ref)
        for event in self.log(target):  # newest first
            if event.time <= when:
                return event
        return None

    def record_event(self, change: Change) -> None:
        """Record an audit event off the registry branch, on ``refs/modelbox/audit``.

        Downloads are audit events, but a commit on the reviewed branch for every download
        would drown the history people review. They go on their own chain of commits (an
        empty tree each), which pushes and pulls like any ``refs/modelbox/*`` ref.
        """
        self.repo.identity()
        with locked(self.repo.git_dir):
            recovery.clear_stale_ref_lock(self.repo.git_dir, AUDIT_REF)
            head = self.repo.ref(AUDIT_REF)
            sha = self.repo.write_commit(
                tree=self.repo.build_tree(None, {}), parents=[head] if head else [],
                message=change.message(), author=self.repo.identity(),
            )
            self.repo.update_ref(AUDIT_REF, head, sha, f"modelbox: {change.subject}")

    # -- overridden by a registry read through its URL (modelbox.urlread) ----------------
    def own_store(self) -> str:
        """The embedded default store: this clone's ``.git/modelbox/store``."""
        return str(self.repo.git_dir / "modelbox" / "store")

    def store_root(self) -> str | Path:
        """What a folder ``store`` setting is relative to: the registry root."""
        return self.repo.root or self.repo.git_dir

    def check_download_audit(self) -> None:
        """Refuse a download before anything is placed if it could not be recorded (a
        download is an audited commit: it needs a Git identity)."""
        self.repo.identity()

    def log(self, target: str | None = None) -> list[AuditEvent]:
        """Audit events, newest first, optionally about one model, version or tag."""
        from modelbox.audit_index import AuditIndex, events_of
        from modelbox.outside import OutsideMoves

        # Commits modelbox did not write can move tags too (a plain `git commit`).
        outside = OutsideMoves(self.repo)
        head = self.head()
        side = self.repo.ref(AUDIT_REF) if self._batch is None else None
        if target is not None and self._batch is None:
            # One target: only the commits the audit index lists for its model are read.
            model = audit.model_of(target)
            branch = AuditIndex(self.history, self.branch_ref, head, outside).records(
                model) if head else []
            downloads = AuditIndex(self.history, AUDIT_REF, side, None).records(
                model) if side else []
        else:
            branch = list(self.history.walk(head))
            downloads = list(self.history.walk(side))
        records = branch
        if side:
            # Git times have one-second resolution; within a second a download is taken
            # to follow the change it downloaded (audit records go first, the sort is stable).
            records = [*downloads, *branch]
            records.sort(key=lambda r: r.time, reverse=True)
        on_branch = {record.sha for record in branch}
        out = []
        for record in records:
            for event in events_of(record, outside if record.sha in on_branch else None):
                if target is None or audit.concerns(event, target):
                    out.append(event)
        outside.save()
        return out

    # -- models --------------------------------------------------------------------------
    def create_model(
        self,
        model: ModelName,
        *,
        owner: str = "",
        task: str = "",
        description: str = "",
        metadata: dict[str, Any] | None = None,
        datasets: list[str] | None = None,
        collection: bool = False,
        display_name: str = "",
    ) -> ModelManifest:
        """Create a model (or a collection of links); raise ModelExistsError if it exists.
        ``display_name`` is checked by the caller (:func:`modelbox.collections.display_name`)."""
        from modelbox.manifests import ModelManifest, now

        collisions.check_full_name("model", model)
        manifest = ModelManifest(
            namespace=model.namespace, name=model.name, owner=owner, task=task,
            description=description, metadata=json_metadata(metadata), datasets=datasets or [],
            collection=collection, display_name=display_name, created_at=now(),
        )
        with self.transaction() as txn:
            if txn.snapshot.read(layout.model_file(model)) is not None:
                raise ModelExistsError(str(model))
            if txn.snapshot.read(layout.experiment_file(model)) is not None:
                raise AlreadyExistsError(f"{model} is an experiment; choose another model name")
            self._check_ref_collision(txn.snapshot, model)
            collisions.refuse_case_twin(txn.snapshot, "model", layout.model_dir(model))
            txn.put(layout.model_file(model), manifest)
            kind = "collection" if collection else "model"
            txn.change = Change(f"{kind}.create", str(model), f"{kind} create {model}")
        return manifest

    def update_model(self, model: ModelName, **fields: Any) -> ModelManifest:
        """Change a model's owner, task, description or datasets."""
        from modelbox.manifests import ModelManifest

        with self.transaction() as txn:
            old = self._model(txn.snapshot, model)
            new = old.model_copy(update={k: v for k, v in fields.items() if v is not None})
            new = ModelManifest.model_validate(new.model_dump())
            if new != old:
                txn.put(layout.model_file(model), new)
                changed = sorted(k for k in fields if getattr(old, k) != getattr(new, k))
                txn.change = Change(
                    "model.update", str(model), f"model update {model} {', '.join(changed)}",
                    before=json.dumps({k: getattr(old, k) for k in changed}),
                    after=json.dumps({k: getattr(new, k) for k in changed}),
                )
        return new

    def _check_ref_collision(self, snap: Snapshot, model: ModelName) -> None:
        """A model ``a/b/c[/...]`` and a tag ``c`` of model ``a/b`` would share a ref path."""
        parts = model.parts
        for i in range(2, len(parts)):
            parent = ModelName("/".join(parts[: i - 1]), parts[i - 1])
            for tag in self._tags(snap, parent):  # refs differing in case collide too
                if fold(tag) == fold(parts[i]):
                    raise InvalidNameError(
                        "model", str(model),
                        f"its tag refs would collide with the tag {parent}:{tag}",
                    )

    # -- versions ------------------------------------------------------------------------
    def create_version(
        self,
        model: ModelName,
        version: str | None,
        *,
        name: str | None = None,
        description: str = "",
        framework: MLFramework | str = MLFramework.UNKNOWN,
        metadata: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        copy_from: Reference | None = None,
    ) -> VersionManifest:
        """Create a version, optionally with unique tags; raise if it or a tag is taken.

        ``version`` None names it ``vN``, one more than the highest ``vN`` the model has
        (:mod:`modelbox.numbering`, W&B's numbering), taken under the lock.

        ``copy_from`` (``M@V``, ``M:TAG``, a link) copies that version's artifact pointers,
        directory listings included, into the new version: nothing is uploaded. The new
        version is open; metadata ``source_version`` records where it came from.
        """
        if version is not None:  # bad names are refused before the lock is taken
            check_segment("version", version)
        for tag in tags or []:
            _check_tag(tag)
        with self.transaction() as txn:
            return self.create_version_in(
                txn, model, version, name=name, description=description,
                framework=framework, metadata=metadata, tags=tags, copy_from=copy_from)

    def create_version_in(
        self,
        txn: Transaction,
        model: ModelName,
        version: str | None,
        *,
        name: str | None = None,
        description: str = "",
        framework: MLFramework | str = MLFramework.UNKNOWN,
        metadata: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        copy_from: Reference | None = None,
    ) -> VersionManifest:
        """Stage :meth:`create_version` inside ``txn`` (a promotion adds to the commit)."""
        from modelbox.manifests import VersionManifest, now

        if version is not None:
            check_segment("version", version)
        for tag in tags or []:
            _check_tag(tag)
        snap = txn.snapshot
        parent = self._model(snap, model)
        if parent.collection:
            raise InvalidValueError(
                f"{model} is a collection: its versions are links; "
                f"run `modelbox link MODEL@VERSION {model}`"
            )
        if version is None:
            from modelbox.numbering import next_version

            version = next_version(snap, model)
        if snap.is_dir(layout.version_dir(model, version)):
            raise VersionExistsError(str(model), version)
        collisions.refuse_case_twin(snap, "version", layout.version_dir(model, version))
        metadata = json_metadata(metadata)
        copied: list[str] = []
        if copy_from is not None:
            origin, copied = self._copy_pointers(txn, copy_from, model, version)
            metadata.setdefault("source_version", origin)
        manifest = VersionManifest(
            model=str(model), version=version,
            name=parent.name if name is None else name, description=description,
            framework=framework_of(framework), metadata=metadata,
            created_at=now(),
        )
        txn.put(layout.version_file(model, version), manifest)
        txn.change = Change("version.create", f"{model}@{version}",
                            f"version create {model}@{version}"
                            + (f" --from {metadata['source_version']}" if copy_from else ""),
                            after=" ".join(copied) or None)
        if tags:
            current = self._tags(snap, model)
            for tag in dict.fromkeys(tags):
                if tag in current:
                    raise TagConflictError(str(model), tag, current[tag])
                collisions.refuse_tag_twin(model, tag, current)
                self._check_tag_collision(snap, model, tag)
                current[tag] = version
                txn.change.tag_moves.append(TagMove(f"{model}:{tag}", None, version))
            self._put_tags(txn, model, current)
        return manifest

    def _copy_pointers(
        self, txn: Transaction, source: Reference, model: ModelName, version: str
    ) -> tuple[str, list[str]]:
        """Stage copies of the pointers of the version ``source`` names (through links) as
        ``model@version``'s; return the source's name and ``path=sha256|uri`` per pointer.
        A released source must still match its digest (a hand edit is not copied)."""
        from modelbox import resolver
        from modelbox.collections import follow
        from modelbox.collections import source_dir as collections_source_dir
        from modelbox.manifests import ArtifactPointer, parse

        snap = txn.snapshot
        start = resolver.resolve_version(snap, source)
        holder, held = follow(snap, source.model, start)[-1]
        origin = f"{holder}@{held}"
        source_dir = collections_source_dir(snap, holder, held)
        entries = releases.pointer_entries(snap, source_dir)
        release = releases.release_of(snap.read(layout.version_file(holder, held)))
        if release is not None and isinstance(release.get("digest"), str):
            releases.verify(origin, entries, release["digest"])
        root = f"{source_dir}/{layout.ARTIFACTS_DIR}"
        into = f"{layout.version_dir(model, version)}/{layout.ARTIFACTS_DIR}"
        copied = []
        for full in releases.pointer_paths(snap, root):
            pointer = parse(ArtifactPointer, full, snap.read(full) or b"")
            txn.put(into + full[len(root):], pointer)
            copied.append(f"{pointer.path}={pointer.sha256 or pointer.uri}")
        return origin, sorted(copied)

    def archive_version(
        self, model: ModelName, version: str, *, archived: bool = True, force: bool = False
    ) -> list[str]:
        """Archive (hide, untag) or restore a version; history keeps everything.

        Returns the tags archiving removed. A tagged version needs ``force``: without it
        :class:`InUseError` lists the tags and nothing changes. Links to it stay valid.
        """
        with self.transaction() as txn:
            if archived and not force:
                tagged = self._tagged(txn.snapshot, model, version)
                if tagged:
                    raise InUseError("archive", f"{model}@{version}", [
                        f"remove its tags {', '.join(tagged)} (links to it stay valid)"])
            return self.archive_in(txn, model, version, archived=archived)

    def archive_in(
        self, txn: Transaction, model: ModelName, version: str, *, archived: bool = True
    ) -> list[str]:
        """Stage archiving (or restoring) a version inside ``txn``; return the tags dropped."""
        old = self._version(txn.snapshot, model, version)
        if old.archived == archived:
            return []
        txn.put(layout.version_file(model, version),
                old.model_copy(update={"archived": archived}))
        op = "version.archive" if archived else "version.restore"
        txn.change = Change(op, f"{model}@{version}", f"{op.replace('.', ' ')} "
                            f"{model}@{version}")
        return self._drop_tags(txn, model, version) if archived else []

    def delete_version(
        self, model: ModelName, version: str, *, force: bool = False
    ) -> tuple[list[str], list[str]]:
        """Remove a version from the branch (history keeps it); return the tags removed
        and the links left dangling. Either needs ``force`` (:class:`InUseError` lists
        them, and nothing changes, without it)."""
        with self.transaction() as txn:
            self._version(txn.snapshot, model, version)
            tagged = self._tagged(txn.snapshot, model, version)
            from modelbox.collections import links_to

            linked = links_to(txn.snapshot, f"{model}@{version}")
            if (tagged or linked) and not force:
                raise InUseError("delete", f"{model}@{version}", in_use(tagged, linked))
            txn.delete(layout.version_dir(model, version))
            txn.change = Change("version.delete", f"{model}@{version}",
                                f"version delete {model}@{version}",
                                after=f"dangling links: {', '.join(linked)}" if linked else None)
            self._drop_tags(txn, model, version)
        return tagged, linked

    def _tagged(self, snap: Snapshot, model: ModelName, version: str) -> list[str]:
        return sorted(t for t, v in self._tags(snap, model).items() if v == version)

    def _drop_tags(self, txn: Transaction, model: ModelName, version: str) -> list[str]:
        assert txn.change is not None
        current = self._tags(txn.snapshot, model)
        dropped = sorted(t for t, v in current.items() if v == version)
        if not dropped:
            return []
        for tag in dropped:
            del current[tag]
            txn.change.tag_moves.append(TagMove(f"{model}:{tag}", version, None))
        self._put_tags(txn, model, current)
        return dropped

    def tags_in(self, snap: Snapshot, model: ModelName) -> dict[str, str]:
        """The tag map of ``model`` as ``snap`` has it."""
        return self._tags(snap, model)

    def put_tags(self, txn: Transaction, model: ModelName, tags: dict[str, str]) -> None:
        """Stage ``tags`` as the model's whole tag map."""
        self._put_tags(txn, model, tags)

    def _put_tags(self, txn: Transaction, model: ModelName, tags: dict[str, str]) -> None:
        from modelbox.manifests import TagMap

        protected = self.settings.protected_tags
        if protected:  # a protected tag releases what it names (the one place tags are set)
            old = self._tags(txn.snapshot, model)
            for tag, version in tags.items():
                if tag in protected and old.get(tag) != version:
                    self.release_in(txn, model, version, f"tag {tag}")
        if tags:
            txn.put(layout.tags_file(model), TagMap(tags=tags))
        else:
            txn.delete(layout.tags_file(model))

    # -- releases ------------------------------------------------------------------------
    def release_version(self, model: ModelName, version: str) -> Release:
        """Release ``model@version`` (``version release``): record the digest of its
        artifact set and freeze it. Releasing a released version changes nothing.

        Raises:
            InvalidValueError: the version is a link, or has no artifacts.
        """
        with self.transaction() as txn:
            manifest = self._version(txn.snapshot, model, version)
            if manifest.link:
                raise InvalidValueError(
                    f"{model}@{version} is a link to {manifest.link}: links record the digest "
                    f"they name; release {manifest.link} itself"
                )
            if manifest.released is not None:
                return manifest.released
            txn.change = Change("version.release", f"{model}@{version}",
                                f"version release {model}@{version}")
            release = self.release_in(txn, model, version, "version release")
            assert release is not None
            txn.change.after = release.digest
        return release

    def release_in(
        self, txn: Transaction, model: ModelName, version: str, by: str, *, empty: bool = False
    ) -> Release | None:
        """Stage the release of ``model@version`` inside ``txn`` (by ``by``: "tag
        production", "link C@v0"...); return its release (None for a link or a missing
        version: other rules speak about those). ``empty`` allows an artifact-less one."""
        from modelbox.manifests import Release, VersionManifest, now, parse

        path = layout.version_file(model, version)
        data = txn.writes[path] if path in txn.writes else txn.snapshot.read(path)
        if data is None:
            return None
        manifest = parse(VersionManifest, path, data)
        if manifest.link:
            return None
        if manifest.released is not None:
            return manifest.released
        folder = layout.version_dir(model, version)
        found = {e[0]: e for e in releases.pointer_entries(txn.snapshot, folder)}
        root = f"{folder}/{layout.ARTIFACTS_DIR}/"
        for written, content in txn.writes.items():  # staged in this very commit
            if written.startswith(root) and written.endswith(".json"):
                name = written[len(root) : -len(".json")]
                if content is None:
                    found.pop(name, None)
                else:
                    found[name] = releases.entry(name, content)
        entries = list(found.values())
        if not entries and not empty:
            raise InvalidValueError(
                f"{model}@{version} has no artifacts, and {by} would release (freeze) it; "
                f"add its artifacts first (`modelbox artifact add {model}@{version} FILE`) "
                "or use an unprotected tag such as staging"
            )
        release = Release(at=now(), by=by, digest=releases.digest(entries))
        txn.put(path, manifest.model_copy(update={"released": release}))
        return release

    def set_protected_tags(self, tags: list[str]) -> list[str]:
        """Make ``tags`` the registry's protected tags (one commit); each version one of
        them names now is released by it. Return the versions released."""
        from modelbox.manifests import RegistrySettings, parse

        tags = list(dict.fromkeys(tags))
        for tag in tags:
            _check_tag(tag)
        if len(tags) > 64:
            raise InvalidValueError("at most 64 protected tags; protect fewer")
        released = []
        with self.transaction() as txn:
            data = txn.snapshot.read(layout.SETTINGS) or b"{}"
            current = parse(RegistrySettings, layout.SETTINGS, data)
            before = list(self.settings.protected_tags)
            if current.protected_tags == tags:
                return []
            txn.put(layout.SETTINGS, current.model_copy(update={"protected_tags": tags}))
            txn.change = Change("registry.settings", layout.SETTINGS,
                                f"protected tags {', '.join(tags) or '(none)'}",
                                before=_json(before), after=_json(tags))
            start = len(layout.MODELS) + 1
            for path in manifest_paths(txn.snapshot, layout.MODELS, layout.MODEL_FILE):
                model = parse_model(path[start : -len(layout.MODEL_FILE) - 1])
                for tag, version in sorted(self._tags(txn.snapshot, model).items()):
                    if tag in tags and tag not in before and self.release_in(
                        txn, model, version, f"tag {tag}"
                    ) is not None:
                        released.append(f"{model}@{version}")
        self.settings = self.settings._replace(protected_tags=tuple(tags))
        return released

    def set_git_tags(self, on: bool) -> bool:
        """Turn the ``git_tags`` setting on or off (one commit); False if it already was.
        Turned on, the models each later write touches get their GTO tags (docs/gto.md)."""
        from modelbox.manifests import RegistrySettings, parse

        with self.transaction() as txn:
            data = txn.snapshot.read(layout.SETTINGS) or b"{}"
            current = parse(RegistrySettings, layout.SETTINGS, data)
            if current.git_tags == on:
                return False
            txn.put(layout.SETTINGS, current.model_copy(update={"git_tags": on}))
            txn.change = Change("registry.settings", layout.SETTINGS,
                                f"git tags {'on' if on else 'off'}",
                                before=_json(current.git_tags), after=_json(on))
        self.settings = self.settings._replace(git_tags=on)
        return True

    # -- tags ----------------------------------------------------------------------------
    def tag(self, model: ModelName, version: str, tag: str) -> str | None:
        """Point the unique ``tag`` at ``version``; return the version it left (or None)."""
        _check_tag(tag)
        with self.transaction() as txn:
            manifest = self._version(txn.snapshot, model, version)
            if manifest.archived:
                raise InvalidValueError(
                    f"{model}@{version} is archived; restore it before tagging it"
                )
            before = self._tags(txn.snapshot, model).get(tag)
            if before == version:
                return before
            self.tag_in(txn, model, version, tag)
            op = audit.tag_operation(before, version)
            arrow = f"{before} -> {version}" if before else f"-> {version}"
            txn.change = Change(op, f"{model}:{tag}", f"tag {model}:{tag} {arrow}",
                                before=before, after=version)
            _pin(txn, model, tag)
        return before

    def tag_in(self, txn: Transaction, model: ModelName, version: str, tag: str) -> str | None:
        """Stage pointing ``tag`` at ``version`` (staged tag maps of ``txn`` included);
        return the version it left. The caller words the audit record."""
        staged = txn.writes.get(layout.tags_file(model))
        current = (self._tags(txn.snapshot, model) if layout.tags_file(model) not in txn.writes
                   else {} if staged is None else parse_tags(layout.tags_file(model), staged))
        before = current.get(tag)
        if before == version:
            return before
        collisions.refuse_tag_twin(model, tag, current)
        self._check_tag_collision(txn.snapshot, model, tag)
        current[tag] = version
        self._put_tags(txn, model, current)
        return before

    def untag(self, model: ModelName, tag: str) -> str:
        """Remove the unique ``tag``; return the version it was on."""
        check_segment("tag", tag)
        with self.transaction() as txn:
            self._model(txn.snapshot, model)
            current = self._tags(txn.snapshot, model)
            if tag not in current:
                raise TagNotFoundError(str(model), tag)
            before = current.pop(tag)
            self._put_tags(txn, model, current)
            txn.change = Change("tag.remove", f"{model}:{tag}",
                                f"untag {model}:{tag} (was {before})", before=before)
            _pin(txn, model, tag)
        return before

    def _check_tag_collision(self, snap: Snapshot, model: ModelName, tag: str) -> None:
        # Any model at or below MODEL/TAG has refs under refs/modelbox/tags/MODEL/TAG/
        # (or, on a case-insensitive file system, below MODEL/Tag/).
        below = layout.model_dir(ModelName(str(model), tag))
        if snap.is_dir(below) or collisions.case_twin(snap, below) is not None:
            raise InvalidNameError(
                "tag", tag, f"its Git ref would collide with the models under {model}/{tag}"
            )

    # -- metadata ------------------------------------------------------------------------
    def set_metadata(self, ref: Reference, key: str, value: Any) -> None:
        """Set metadata ``key`` on a model or version to a JSON value."""
        self._edit_metadata(ref, key, value, remove=False)

    def unset_metadata(self, ref: Reference, key: str) -> None:
        self._edit_metadata(ref, key, None, remove=True)

    def _edit_metadata(self, ref: Reference, key: str, value: Any, *, remove: bool) -> None:
        _check_key(key)
        with self.transaction() as txn:
            path, manifest, target = self.target(txn.snapshot, ref)
            metadata = dict(manifest.metadata)
            before = metadata.get(key)
            if remove:
                if key not in metadata:
                    raise InvalidValueError(f"{target} has no metadata key {key!r}")
                del metadata[key]
            else:
                metadata[key] = json_metadata({key: value})[key]
                if key in metadata and before == metadata[key] and key in manifest.metadata:
                    return
            txn.put(path, manifest.model_copy(update={"metadata": metadata}))
            kind = manifest.kind
            verb = "unset" if remove else "set"
            txn.change = Change(
                f"{kind}.update", target, f"meta {verb} {target} {key}",
                before=None if key not in manifest.metadata else _json(before),
                after=None if remove else _json(metadata[key]),
            )

    def target(
        self, snap: Snapshot, ref: Reference
    ) -> tuple[str, Manifest, str]:
        """The manifest path, manifest and display name of what ``ref`` names: a model or
        version, or an experiment or checkpoint (``EXPERIMENT@CHECKPOINT``), resolved by
        :mod:`modelbox.resolver` like every reference."""
        from modelbox import resolver
        from modelbox.manifests import (
            CheckpointManifest,
            ExperimentManifest,
            ModelManifest,
            VersionManifest,
            parse,
        )

        found = resolver.resolve(snap, ref)
        path = found.path
        data = snap.read(path) or b""
        manifest: Manifest
        if found.experiment:
            manifest = (parse(ExperimentManifest, path, data) if found.version is None
                        else parse(CheckpointManifest, path, data))
        else:
            manifest = (parse(ModelManifest, path, data) if found.version is None
                        else parse(VersionManifest, path, data))
        return path, manifest, str(found)

    # -- metrics -------------------------------------------------------------------------
    def log_metrics(
        self,
        ref: Reference,
        metrics: dict[str, MetricValue],
        *,
        step: int | None = None,
        wallclock: float | datetime | None = None,
    ) -> None:
        """Append one point per key to the target's series and update its summary.

        Values are numbers, strings (a serialized tensor) or bytes; NaN and infinities are
        refused because JSON cannot hold them. The version manifest's ``metrics`` keeps the
        latest number or string of each key (the summary ``diff`` and listings show). One
        commit per call: a
        training loop should use the Python client, which journals points and commits them in
        batches (docs/design.md, "Durable metrics").
        """
        self.append_metrics(ref, metric_points(metrics, step=step, wallclock=wallclock))

    def append_metrics(self, ref: Reference, points: list[tuple[str, MetricPoint]]) -> None:
        """Append many validated points (see :func:`metric_points`) in one commit."""
        if not points:
            return
        with self.transaction() as txn:
            path, manifest, target = self.target(txn.snapshot, ref)
            if getattr(manifest, "link", None):  # a link copies no metrics and has none
                raise InvalidValueError(f"{target} is a link to {getattr(manifest, 'link', '')};"
                                        " log metrics on that version instead")
            series_path = path.rsplit("/", 1)[0] + "/" + layout.METRICS_FILE
            series = self.read_series(txn, series_path)
            if series is not None:
                from modelbox.series_text import merge

                latest = merge(series, points)
                self.write_series(txn, series_path, series)
            else:  # a document of another shape: the general path
                merged, latest = merge_metric_points(txn.snapshot.read(series_path),
                                                     series_path, points)
                txn.put(series_path, merged)
            shown = ", ".join(sorted({key for key, _ in points}))
            summary: dict[str, float | str] = {}
            if hasattr(manifest, "metrics"):  # versions and checkpoints keep a summary
                summary = {**manifest.metrics, **latest}
                txn.put(path, manifest.model_copy(update={"metrics": summary}))
            txn.change = Change(
                "metrics.log", target, f"metrics log {target} {shown}"
                + (f" ({len(points)} points)" if len(points) > shown.count(",") + 1 else ""),
                after=_json(latest),
            )
            if manifest.kind == "version":
                from modelbox.policies import apply_labelling

                version = target.rpartition("@")[2]
                apply_labelling(self, txn, ref.model, version, summary,
                                archived=bool(getattr(manifest, "archived", False)))

    def metrics(self, ref: Reference) -> dict[str, list[dict[str, Any]]]:
        """Every series of a model or version: key -> points (step, wallclock, value)."""
        from modelbox.manifests import MetricSeries, parse

        snap = self.snapshot()
        path, _, _ = self.target(snap, ref)
        series_path = path.rsplit("/", 1)[0] + "/" + layout.METRICS_FILE
        data = snap.read(series_path)
        if data is None:
            return {}
        parsed = parse(MetricSeries, series_path, data)
        return {k: [p.model_dump(mode="json") for p in v] for k, v in parsed.series.items()}

    # -- derived tag refs ----------------------------------------------------------------
    def desired_refs(self, snap: Snapshot, model: ModelName,
                     history: dict[str, list[FileChange]] | None = None,
                     current: dict[str, str] | None = None,
                     recent: tuple[list[FileChange], str | None] | None = None,
                     ) -> dict[str, str]:
        """The tag refs the manifests of ``model`` imply: ref name -> tag object sha, each
        dated with the time of the commit that moved its tag (from ``snap``'s history, or
        from ``history``: :func:`modelbox.tagtimes.history` of every tag map). With
        ``current`` (the model's refs now, when its tag map has not changed since they
        were made), the dates are the ones those refs carry, if every tag has a ref that
        modelbox made for the version it names now; else from history. With ``recent``
        too (the write's own changes of the map, ``snap`` being the write's head), a tag
        the write moved is dated by them, the others as with ``current`` alone."""
        from modelbox import tagtimes

        tags = self._tags(snap, model)
        if not tags:
            return {}
        times: dict[str, int] | None = None
        if current is not None and recent is not None:
            times = self._written_times(model, tags, current, *recent)
        elif current is not None:
            times = self._carried_times(model, tags, current)
        if times is None:
            path = layout.tags_file(model)
            commits = None if history is None else history.get(path)
            if commits is None:  # not asked, or not in a listing (git absent): its own
                commits = tagtimes.history(self.repo, snap.commit, [path]).get(path, [])
            times = tagtimes.move_times(self.repo, tags, commits)
        out = {}
        for tag, version in tags.items():
            tree = snap.tree_id(layout.version_dir(model, version))
            if tree is None:
                continue  # a dangling tag: `check` reports it, no ref can point anywhere
            out[layout.tag_ref(model, tag)] = self.repo.make_tag(
                f"{model}/{tag}", tree, f"{model}@{version}\n", times[tag]
            )
        return out

    def _written_times(self, model: ModelName, tags: dict[str, str], current: dict[str, str],
                       commits: list[FileChange], before: str | None,
                       ) -> dict[str, int] | None:
        """tag -> its date from the write's own changes of the map, or, for a tag that named
        the same version before the write, from its ref (:meth:`_carried_times`); None
        when such a ref is missing or not as modelbox makes it (history decides)."""
        from modelbox import tagtimes

        written = tagtimes.write_times(self.repo, tags, commits, before)
        times = {tag: when for tag, when in written.items() if when is not None}
        older = {tag: tags[tag] for tag, when in written.items() if when is None}
        if older:
            carried = self._carried_times(model, older, current)
            if carried is None:
                return None
            times.update(carried)
        return times

    def _carried_times(self, model: ModelName, tags: dict[str, str],
                       current: dict[str, str]) -> dict[str, int] | None:
        """tag -> the date its ref carries, if each tag's ref is a tag object as
        :meth:`desired_refs` makes it for the version the tag names now; else None."""
        times = {}
        for tag, version in tags.items():
            sha = current.get(layout.tag_ref(model, tag))
            when = None if sha is None else self.repo.made_tag_time(
                sha, f"{model}/{tag}", f"{model}@{version}\n")
            if when is None:
                return None
            times[tag] = when
        return times

    def _model_refs(self, model: ModelName) -> dict[str, str]:
        prefix = f"{layout.TAG_REF_PREFIX}{model}/"
        return {
            name: sha for name, sha in self.repo.refs_under(prefix).items()
            if "/" not in name[len(prefix):]
        }

    def _tag_map_history(self, snap: Snapshot, models: list[ModelName],
                         ) -> dict[str, list[FileChange]] | None:
        """The history of several models' tag maps in one ``git log`` per 500 (a batch
        that moved 1,000 models' tags walked a 100k-commit history 1,000 times, ~1 s
        each); None for one model (:meth:`desired_refs` asks for its own)."""
        from modelbox import tagtimes

        if len(models) < 2:
            return None
        paths = sorted({layout.tags_file(model) for model in models})
        history: dict[str, list[FileChange]] = {}
        for start in range(0, len(paths), 500):
            history.update(tagtimes.history(self.repo, snap.commit, paths[start:start + 500]))
        return history

    def _sync_model_refs(self, snap: Snapshot, model: ModelName,
                         history: dict[str, list[FileChange]] | None = None,
                         keep_times: bool = False,
                         recent: tuple[list[FileChange], str | None] | None = None) -> None:
        actual = self._model_refs(model)
        desired = self.desired_refs(snap, model, history,
                                    actual if keep_times or recent is not None else None,
                                    recent)
        for name in actual.keys() - desired.keys():
            self.repo.delete_ref(name)
        for name, sha in desired.items():
            if actual.get(name) != sha:
                # The commit has landed; a ref path that a merge made collide
                # (a/b:x vs a/b/x/y:prod) is left for `modelbox check` to report.
                with contextlib.suppress(NotADirectoryError, IsADirectoryError, FileExistsError):
                    self.repo.set_ref(name, sha)

    def all_desired_refs(self) -> dict[str, str]:
        """The tag refs the registry branch's manifests imply (never a target branch's)."""
        from modelbox import tagtimes

        snap = self.repo.snapshot(self.registry_head() if self._target else self.head())
        history = tagtimes.history(self.repo, snap.commit, None)  # one git log for all
        out: dict[str, str] = {}
        # The model's name is its folder's path, as `check` reads it: parsing every model
        # manifest (pydantic) only to learn the name was most of a sync's time (~0.8 s of
        # ~1 s at 1,000 models), which every clone and the first push after a write paid.
        start = len(layout.MODELS) + 1
        for path in manifest_paths(snap, layout.MODELS, layout.MODEL_FILE):
            try:
                model = parse_model(path[start : -len(layout.MODEL_FILE) - 1])
            except InvalidNameError:
                # A folder no model can have (pulled, or made by hand): no ref can mirror
                # it, and it must not stop the others' refs; `check` reports it.
                continue
            out.update(self.desired_refs(snap, model, history))
        return out

    def sync_git_tags(self) -> list[str]:
        """Make the GTO tags every model lacks (the ``git_tags`` setting on); their names."""
        from modelbox import gittags

        with locked(self.repo.git_dir):
            return gittags.reconcile(self, None, quiet=True)

    def sync_refs(self) -> dict[str, tuple[str | None, str | None]]:
        """Rebuild ``refs/modelbox/tags/*`` from the manifests; return what changed."""
        if self._batch is not None:
            raise GitError("internal error: refs are synced after a batch, not inside one")
        with locked(self.repo.git_dir):
            return self._sync_all_refs()

    def _sync_all_refs(self) -> dict[str, tuple[str | None, str | None]]:
        desired = self.all_desired_refs()
        for short, long in ref_collisions(desired):
            raise InvalidValueError(
                f"cannot mirror the tags as refs: {short} and {long} need the same Git "
                f"ref path; untag {short} or rename the model"
            )
        actual = self.repo.refs_under(layout.TAG_REF_PREFIX)
        changed: dict[str, tuple[str | None, str | None]] = {}
        # Deletions first: a stale ref a/b/x would block a new ref a/b/x/y/prod.
        for name in sorted(actual.keys() - desired.keys(), reverse=True):
            self.repo.delete_ref(name)
            changed[name] = (actual[name], None)
        for name, sha in sorted(desired.items()):
            if actual.get(name) != sha:
                self.repo.set_ref(name, sha)
                changed[name] = (actual.get(name), sha)
        return changed


def _batch_moves(batch: _Batch) -> list[PathChange]:
    """The files that differ between the batch's base and head (what ``changed_paths`` of
    the two trees gives), from what its commits changed: removals first, so no file
    stands where a folder is made (or back)."""
    moves = [PathChange(path, old, batch.final[path])
             for path, old in batch.original.items() if batch.final[path] != old]
    moves.sort(key=lambda c: (c.new_sha is not None, c.path))
    return moves


def ref_collisions(refs: Iterable[str]) -> list[tuple[str, str]]:
    """Pairs of tags whose refs Git cannot hold at once (``a/b:x`` vs ``a/b/x/y:prod``)."""
    names = set(refs)
    out = []
    for name in sorted(names):
        parts = name[len(layout.TAG_REF_PREFIX) :].split("/")
        for i in range(1, len(parts)):
            prefix = layout.TAG_REF_PREFIX + "/".join(parts[:i])
            if prefix in names:
                out.append((_tag_name(prefix), _tag_name(name)))
    return out


def _tag_name(ref: str) -> str:
    model, _, tag = ref[len(layout.TAG_REF_PREFIX) :].rpartition("/")
    return f"{model}:{tag}"


def manifest_paths(
    snap: Snapshot, top: str, filename: str, namespace: str | None = None
) -> Iterator[str]:
    """Paths of every ``filename`` (``_model.json``...) in the namespaces under ``top``,
    or under ``top/namespace`` only; ``_``-folders (versions, checkpoints) are not entered."""
    root = top + (f"/{parse_namespace(namespace)}" if namespace else "")
    stack = [root]
    while stack:
        directory = stack.pop()
        for name, is_dir in snap.listdir(directory):
            if is_dir and not name.startswith("_"):
                stack.append(f"{directory}/{name}")
            elif name == filename and directory != root:
                yield f"{directory}/{name}"


#: The largest bytes value one metric point holds (1 MiB; a larger blob is an artifact).
MAX_METRIC_BYTES = 1024 * 1024

MetricValue = float | int | str | bytes
"""What ``log_metrics`` takes per key: a finite number, a string (a serialized tensor) or
bytes (kept as ``{"bytes": "<base64>"}``)."""


def merge_metric_points(
    data: bytes | MetricSeries | None, series_path: str,
    points: list[tuple[str, MetricPoint]],
) -> tuple[MetricSeries, dict[str, float | str]]:
    """The series file ``data`` (its bytes, or already parsed; None: none yet) with
    ``points`` added, each changed series in seed 003's order (by step, else by wallclock:
    modelbox/metric_order.py), and the latest value of each key the points touch."""
    from modelbox import metric_order
    from modelbox.manifests import MetricSeries, parse

    current = (data if isinstance(data, MetricSeries)
               else parse(MetricSeries, series_path, data) if data else MetricSeries())
    series = {k: list(v) for k, v in current.series.items()}
    for key, point in points:
        series.setdefault(key, []).append(point)
    latest: dict[str, float | str] = {}
    for key in dict.fromkeys(key for key, _ in points):
        series[key] = metric_order.ordered(series[key])
        value = metric_order.latest(series[key])
        if value is not None:
            latest[key] = value
    return MetricSeries(series=series), latest


def metric_points(
    metrics: dict[str, MetricValue], *, step: int | None,
    wallclock: float | datetime | None,
) -> list[tuple[str, MetricPoint]]:
    """Validate one ``log_metrics`` call into points; raise InvalidValueError naming the key.

    ``wallclock`` is seconds since the epoch or a ``datetime``; a naive ``datetime`` is
    read as UTC (``datetime.utcnow()`` style), not local time.
    """
    import math
    import time

    from modelbox.manifests import BytesValue, MetricPoint

    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        raise InvalidValueError(f"step must be an integer, got {step!r}")
    when = time.time() if wallclock is None else _seconds(wallclock)
    points = []
    for key, value in metrics.items():
        _check_key(key)
        stored: float | str | BytesValue
        if isinstance(value, (bytes, bytearray, memoryview)):
            raw = bytes(value)
            if len(raw) > MAX_METRIC_BYTES:
                raise InvalidValueError(
                    f"metric {key!r} holds {len(raw)} bytes; at most {MAX_METRIC_BYTES}"
                    " per value: store larger blobs as an artifact")
            stored = BytesValue.of(raw)
        elif isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise InvalidValueError(f"metric {key!r} must be a number, a string or bytes")
        elif isinstance(value, float) and not math.isfinite(value):
            raise InvalidValueError(f"metric {key!r} is {value}; only finite numbers")
        else:
            stored = float(value) if isinstance(value, int) else value
        points.append((key, MetricPoint(step=step, wallclock=when, value=stored)))
    return points


def _pin(txn: Transaction, model: ModelName, tag: str) -> None:
    """A tag set or removed by hand is pinned against its labelling policy (a rollback
    must not be undone by the next metrics log); the commit's subject says so."""
    from modelbox.policies import pin_by_hand

    assert txn.change is not None
    if pin_by_hand(txn, model, tag):
        txn.change.subject += " (pinned against policy moves)"


def in_use(tags: list[str], links: list[str], *, done: bool = False) -> list[str]:
    """What removing something tagged ``tags`` and linked by ``links`` would do (or, with
    ``done``, did), in words: :class:`InUseError`'s message and the CLI's report."""
    out = []
    if tags:
        out.append(f"{'removed' if done else 'remove'} its tags {', '.join(tags)}")
    if links:
        out.append(f"{'left' if done else 'leave'} dangling the links to it (linked by "
                   f"{', '.join(links)}; `modelbox check` reports them)")
    return out


def _seconds(wallclock: float | datetime) -> float:
    import math

    if isinstance(wallclock, datetime):
        if wallclock.tzinfo is None:
            wallclock = wallclock.replace(tzinfo=timezone.utc)
        return wallclock.timestamp()
    if isinstance(wallclock, bool) or not isinstance(wallclock, (int, float)):
        raise InvalidValueError(
            f"wallclock must be seconds since the epoch or a datetime, got {wallclock!r}")
    if not math.isfinite(wallclock):
        raise InvalidValueError(f"wallclock is {wallclock}; only finite numbers")
    return float(wallclock)


def _check_tag(tag: str) -> None:
    check_segment("tag", tag)
    if tag in RESERVED_TAGS:
        raise InvalidNameError("tag", tag, "it is computed by modelbox and cannot be assigned")


_GOOD_KEYS: set[str] = set()  # keys that passed _check_key: a training loop logs the same
_GOOD_KEYS_MAX = 65_536  # ten keys every step, so checking each once saves most of a call


def _check_key(key: str) -> None:
    if key in _GOOD_KEYS:
        return
    if not key or any(ord(c) < 32 for c in key):
        raise InvalidValueError(f"invalid metadata key {key!r}: it must be non-empty text")
    try:
        limits.check_value(key)
    except limits.LimitError as exc:
        raise InvalidValueError(f"invalid key {key!r}: it {exc}") from None
    if len(_GOOD_KEYS) < _GOOD_KEYS_MAX and type(key) is str:
        _GOOD_KEYS.add(key)


def framework_of(value: MLFramework | str) -> MLFramework:
    try:
        return MLFramework(value.lower() if isinstance(value, str) else value)
    except ValueError:
        names = ", ".join(f.value for f in MLFramework)
        raise InvalidValueError(f"unknown framework {value!r}; use one of {names}") from None


def json_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """Metadata must be JSON: check it round-trips and forbid NaN/Infinity."""
    if not metadata:
        return {}
    for key, value in metadata.items():
        try:
            limits.check_value(key)
            limits.check_value(value, depth=limits.MAX_VALUE_DEPTH)
        except limits.LimitError as exc:
            raise InvalidValueError(
                f"metadata {limits.shown(str(key))!r} {exc}; give a smaller value, in UTF-8"
            ) from None
    try:
        return dict(json.loads(json.dumps(metadata, allow_nan=False)))
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(f"metadata must be JSON-encodable: {exc}") from None



def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _store_setting(root: Path, store: str) -> str:
    """``init --store``'s value as committed: checked, a relative folder made relative to
    the registry root (it was given relative to the current directory)."""
    from modelbox.objects.schemes import check_store_url, scheme_of

    check_store_url(store, f"--store {store}", None)
    if scheme_of(store) is not None:
        return store
    folder = Path(store).expanduser()
    if folder.is_absolute():
        return str(folder)
    return Path(os.path.relpath(folder.resolve(), root.resolve())).as_posix()
