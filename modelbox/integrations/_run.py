"""One training run as the framework callbacks feed it: the part no framework knows about.

The training thread only does what is cheap: metric points and events go to the client's
journal (on disk when ``log_metrics`` or ``event`` returns: durable, batched), and a saved
checkpoint is *staged* — its files hard-linked into ``.git/modelbox/callbacks/`` (or
beside the checkpoint when that is another file system; copied only when neither links), so
that a framework deleting an old checkpoint (``save_total_limit``, ``save_top_k``) cannot
pull it away mid-upload. One background thread, with a client of its own, does every
commit: it uploads each staged checkpoint as the artifacts of a new checkpoint
``EXP@NAME`` (one batch: checkpoint, files and its metrics land together or not at all),
writes the events, and commits the journal every ``flush_every`` seconds, so the training
thread never waits for an upload. At most ``max_pending`` checkpoints wait; a trainer that
saves faster than the store takes them waits for the oldest (bounded disk and memory).

A failed upload does not stop training: it is one warning line on stderr, and
:meth:`TrainingRun.close` raises the first such error once the rest has landed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import os
import queue
import shutil
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelbox.client import Experiment, ModelBoxClient
from modelbox.errors import ArtifactError, InvalidValueError, ModelboxError
from modelbox.lifecycle import Event
from modelbox.names import Reference, parse_model
from modelbox.processes import process_alive, yield_cpu
from modelbox.registry import MetricValue

STAGING_DIR = "callbacks"  # under .git/modelbox/
_SIDE_STAGING = ".modelbox-staging"  # beside the checkpoint, when .git is elsewhere
_COUNTER = itertools.count(1)
BACKGROUND_NICE = 10  # how much nicer the upload thread runs than training (Linux)


@dataclass
class _Staged:
    """A checkpoint the framework wrote, hard-linked (or copied) where nothing deletes it."""

    name: str
    folder: Path  # holds the staged files and nothing else; removed after the upload
    paths: list[Path]
    epoch: int | None
    step: int | None
    metrics: dict[str, MetricValue]
    fingerprint: list[tuple[str, int, int]]  # (file, size, mtime_ns) when staged
    written_at: float = field(default_factory=time.time)


@dataclass
class RunStats:
    """What the run cost the training thread, and what the background thread did."""

    stall_seconds: float = 0.0  # time the training thread spent staging checkpoints
    waited_seconds: float = 0.0  # time it waited for a free upload slot
    upload_seconds: list[float] = field(default_factory=list)  # per ingested checkpoint
    ingested: list[str] = field(default_factory=list)  # EXP@NAME, in order
    failed: list[str] = field(default_factory=list)


class TrainingRun:
    """An experiment fed by a training loop (see the module docstring).

    ``registry`` is the registry folder; ``experiment`` the experiment's name
    (``NAMESPACE/NAME``), created if missing and reused if it exists (a resumed job).
    """

    def __init__(
        self, experiment: str, registry: str | Path = ".", *, framework: str,
        source: str, owner: str = "", flush_every: float = 30.0, max_pending: int = 2,
    ) -> None:
        if max_pending < 1:
            raise InvalidValueError(f"max_pending must be at least 1, got {max_pending}")
        self.name = str(parse_model(experiment))
        self.source = source
        self._framework, self._owner = framework, owner
        self._path = Path(registry)
        self._flush_every = flush_every
        self._client: ModelBoxClient | None = None
        # (client, experiment): [the one logged to now, the one to commit]
        self._journals: list[tuple[ModelBoxClient, Experiment]] = []
        self._staging = Path()
        self._ref: Reference
        self._jobs: queue.Queue[_Staged | None] = queue.Queue(maxsize=max_pending)
        self._events: list[Event] = []
        self._events_lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._errors: list[ModelboxError] = []
        self._last_step: dict[str, int] = {}
        self.stats = RunStats()

    # -- the training thread ---------------------------------------------------------
    def start(self, hyperparameters: Mapping[str, Any] | None = None) -> None:
        """Create (or reuse) the experiment, record the hyperparameters (one commit, only
        what changed) and start the background thread. Raises ModelboxError at once (no
        registry, a bad name): better before the first epoch than after the last."""
        if self._client is not None:
            return
        client = ModelBoxClient(self._path)
        spare: ModelBoxClient | None = None
        try:
            params = hyperparameter_values(hyperparameters or {})
            experiment = client.new_experiment(
                self.name, owner=self._owner, framework=self._framework, metadata=params)
            if params:
                from modelbox import lifecycle

                lifecycle.merge_metadata(client.registry, Reference(parse_model(experiment.id)),
                                         params)
            self._staging = client.registry.repo.git_dir / "modelbox" / STAGING_DIR
            _remove_dead_staging(self._staging)
            spare = ModelBoxClient(self._path)
            self._journals = [(client, experiment), (spare, spare.experiment(experiment.id))]
            for journal, _ in self._journals:
                # The background thread commits every flush_every seconds; the training
                # thread never commits because its journal got old (a commit there is a
                # stall of the loop).
                journal._metrics.commit_by_age = False
        except BaseException:
            client.close()
            if spare is not None:
                spare.close()
            raise
        self._client = client
        self._ref = Reference(parse_model(self.name))
        self._worker = threading.Thread(target=self._work, name=f"modelbox-{self.source}",
                                        daemon=True)
        self._worker.start()

    @property
    def started(self) -> bool:
        return self._client is not None

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None) -> None:
        """Journal the numeric and text values of ``metrics`` at ``step``; values that are
        neither (None, NaN, a tensor of many numbers) are left out, and so is a key already
        logged at this step (frameworks repeat a step's values in their epoch logs)."""
        values = metric_values(metrics)
        if step is not None:
            values = {k: v for k, v in values.items() if self._last_step.get(k) != step}
            self._last_step.update(dict.fromkeys(values, step))
        if values and self._client is not None:
            self._journals[0][1].log_metrics(dict(values), step=step)

    def event(self, name: str, **metadata: Any) -> None:
        """Record an event now: in the journal with the metric points (on disk when this
        returns, past a ``kill -9``), committed with them by the background thread."""
        event = Event(name, source=self.source, metadata=metadata)
        if not self._journals:  # not started (or closed): committed at close, if ever
            with self._events_lock:
                self._events.append(event)
            return
        try:
            self._journals[0][1].journal_events([event])
        except ModelboxError as exc:  # a value no event can hold: never stop training
            print(f"modelbox: warning: event {name} not recorded: {exc}", file=sys.stderr)

    def checkpoint(
        self, paths: Iterable[str | Path], name: str, *, epoch: int | None = None,
        step: int | None = None, metrics: Mapping[str, Any] | None = None,
    ) -> None:
        """Stage the files or folders the framework just wrote as checkpoint ``name`` of the
        experiment, then return: the background thread uploads them."""
        if self._client is None:
            raise InvalidValueError("the training run has not started; call start() first")
        from modelbox.names import check_segment

        check_segment("checkpoint", name)
        began = time.perf_counter()
        staged = _stage([Path(p) for p in paths], self._staging, name)
        job = _Staged(name, staged[0], staged[1], epoch, step, metric_values(metrics or {}),
                      _fingerprint(staged[1]))
        self.stats.stall_seconds += time.perf_counter() - began
        self.event("checkpoint_written", checkpoint=f"{self.name}@{name}", epoch=epoch,
                   step=step, files=[p.name for p in staged[1]])
        began = time.perf_counter()
        self._jobs.put(job)  # waits only when max_pending checkpoints are still uploading
        self.stats.waited_seconds += time.perf_counter() - began

    def close(self) -> None:
        """Wait for every staged checkpoint, commit the events and metrics, stop the thread;
        raise the first upload error, if any (after everything else has landed)."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if self._worker is not None:
                self._jobs.put(None)
                self._worker.join()
            self._write_events(client)
            for journal, _ in self._journals:
                journal.flush()
        finally:
            for journal, _ in self._journals:
                journal.close()
            self._journals = []
        if self._errors:
            raise self._errors[0]

    # -- the background thread -------------------------------------------------------
    def _work(self) -> None:
        # Lower this thread's priority (and the upload threads it starts): on a busy
        # machine hashing and committing take the CPU training leaves over.
        yield_cpu(BACKGROUND_NICE)
        uploader = ModelBoxClient(self._path)  # its own Registry: batches are per object
        try:
            last = time.monotonic()
            while True:
                try:
                    job = self._jobs.get(timeout=self._flush_every)
                except queue.Empty:
                    job = None
                else:
                    if job is None:
                        return
                if job is not None:
                    if _carries_points(job):
                        # The training thread's points first: an ingest adds the points a
                        # checkpoint's own files carry (trainer_state.json) only where the
                        # series has no point at that (key, step) yet.
                        self._commit(uploader, journal=True)
                        last = time.monotonic()
                    self._ingest(uploader, job)
                    self._commit(uploader)
                if time.monotonic() - last >= self._flush_every:
                    self._commit(uploader, journal=True)
                    last = time.monotonic()
        finally:
            with contextlib.suppress(ModelboxError):
                self._commit(uploader)
            uploader.close()

    def _ingest(self, client: ModelBoxClient, job: _Staged) -> None:
        """Record one staged checkpoint: through the watcher's per-layout ingest
        (:meth:`modelbox.ingest.Watcher.ingest`) when the layout is one it knows, so a
        callback and ``experiment watch`` record the same checkpoint the same way; else as
        a checkpoint named ``job.name`` with the files as artifacts. One batch either way:
        the checkpoint lands with its files or not at all."""
        began = time.perf_counter()
        target = f"{self.name}@{job.name}"
        try:
            if _fingerprint(job.paths) != job.fingerprint:
                raise _rewritten(target)
            for attempt in range(3):
                try:
                    with client.registry.batch():
                        ident = self._record(client, job)
                        target = f"{self.name}@{ident}"
                        if _fingerprint(job.paths) != job.fingerprint:
                            raise _rewritten(target)  # the batch is dropped: nothing lands
                    break
                except ArtifactError:
                    # "Changed while hashed" also says the inode's ctime moved: the framework
                    # deleting its own name for the file (rotation) does that. Same size and
                    # mtime: the bytes did not change; once the name is gone, it holds still.
                    if attempt == 2 or _fingerprint(job.paths) != job.fingerprint:
                        raise
            if job.metrics:
                from modelbox.client import Checkpoint
                from modelbox.manifests import CheckpointManifest

                ref = Reference(self._ref.model, version=ident)
                manifest = client.registry.target(client.registry.snapshot(), ref)[1]
                assert isinstance(manifest, CheckpointManifest)
                Checkpoint(client, manifest).log_metrics(job.metrics, step=job.step)
        except (ModelboxError, OSError) as exc:
            error = exc if isinstance(exc, ModelboxError) else ModelboxError(
                f"checkpoint {target} could not be read: {exc}")
            self._errors.append(error)
            self.stats.failed.append(target)
            print(f"modelbox: warning: checkpoint {target} not ingested: {error}",
                  file=sys.stderr)
            return
        finally:
            shutil.rmtree(job.folder, ignore_errors=True)
            if job.folder.parent.name == _SIDE_STAGING:
                with contextlib.suppress(OSError):
                    job.folder.parent.rmdir()  # empty now, unless another run stages there
        seconds = time.perf_counter() - began
        self.stats.upload_seconds.append(seconds)
        self.stats.ingested.append(target)
        self.event("checkpoint_ingested", checkpoint=target, seconds=round(seconds, 3))

    def _record(self, client: ModelBoxClient, job: _Staged) -> str:
        """Write the checkpoint (inside the caller's batch); return its name."""
        from modelbox import lifecycle
        from modelbox.client import Checkpoint
        from modelbox.ingest import layouts
        from modelbox.ingest.watcher import Watcher

        found = [c for c in layouts.scan(job.folder).candidates
                 if c.path in job.paths and c.complete and not c.problem]
        if len(job.paths) == 1 and len(found) == 1:
            candidate = dataclasses.replace(
                found[0], epoch=found[0].epoch if job.epoch is None else job.epoch,
                step=found[0].step if job.step is None else job.step)
            watcher = Watcher(client.registry, self._ref.model, job.folder,
                              on_warning=lambda m: print(f"modelbox: {m}", file=sys.stderr))
            made = watcher.ingest(candidate, candidate.fingerprint())
            if made is not None:
                return made.checkpoint.rpartition("@")[2]
        manifest = lifecycle.create_checkpoint(
            client.registry, self._ref.model, job.name, epoch=job.epoch, step=job.step,
            metadata={"written_at": job.written_at, "source": self.source})
        Checkpoint(client, manifest).upload_artifact(job.paths, replace=True)
        return job.name

    def _commit(self, uploader: ModelBoxClient, *, journal: bool = False) -> None:
        """Events and the uploader's metrics; with ``journal`` the training thread's points
        too. Those are in two journals (two clients): the training thread is switched to
        the other one first, so the commit never holds the lock of the journal it writes
        to (a flush holds it for the whole commit, and a commit can take a second)."""
        try:
            self._write_events(uploader)
            uploader.flush()
            if journal:
                self._journals.reverse()  # one reference swap: atomic under the GIL
                self._journals[1][0].flush()
        except ModelboxError as exc:  # kept in the journal: the next flush tries again
            print(f"modelbox: warning: metrics or events not committed yet: {exc}",
                  file=sys.stderr)

    def _write_events(self, client: ModelBoxClient) -> None:
        from modelbox import lifecycle

        with self._events_lock:
            events, self._events = self._events, []
        try:
            lifecycle.log_events(client.registry, self._ref, events)
        except ModelboxError:
            with self._events_lock:
                self._events[:0] = events
            raise


def _carries_points(job: _Staged) -> bool:
    """Whether the ingest reads metric points from the checkpoint's own files (a Hugging
    Face ``checkpoint-N/`` with its ``trainer_state.json``)."""
    from modelbox.ingest import layouts

    return any((p / layouts.HF_STATE).is_file() for p in job.paths if p.is_dir())


def _rewritten(target: str) -> InvalidValueError:
    return InvalidValueError(f"checkpoint {target} was rewritten in place while it uploaded; "
                             "skipped (the save that rewrote it is recorded on its own)")


def hyperparameter_values(params: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-able scalars (and lists of them) of ``params``, by string key: what
    frameworks put in their configs beside objects (callables, devices) that are no
    hyperparameters a registry can compare."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        plain = _plain(value)
        if plain is not None and isinstance(key, str) and key:
            out[key] = plain
        elif isinstance(value, (list, tuple)) and value and isinstance(key, str) and key:
            items = [_plain(v) for v in value]
            if all(i is not None for i in items):
                out[key] = items
    return out


def metric_values(metrics: Mapping[str, Any]) -> dict[str, MetricValue]:
    """The values of ``metrics`` a metric series can hold: finite numbers (framework
    scalars and one-element tensors included) and text."""
    out: dict[str, MetricValue] = {}
    for key, value in metrics.items():
        plain = _plain(value)
        if isinstance(plain, bool) or plain is None or not isinstance(key, str) or not key:
            continue
        if isinstance(plain, (int, float)) and math.isfinite(plain):
            out[key] = float(plain)
        elif isinstance(plain, str) and plain:
            out[key] = plain
    return out


def _plain(value: Any) -> Any:
    """``value`` as a JSON scalar, or None: numpy/jax/torch scalars through ``item()``."""
    if isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    item = getattr(value, "item", None)
    size = getattr(value, "size", None)
    if callable(size):  # torch: size() is the shape
        size = getattr(value, "numel", lambda: 2)()
    if callable(item) and size == 1:
        try:
            return _plain(item())
        except (TypeError, ValueError, RuntimeError):
            return None
    return None


def _stage(paths: list[Path], staging: Path, name: str) -> tuple[Path, list[Path]]:
    """Hard-link ``paths`` (files or folders) into a new folder; return it and the staged
    paths (same base names). Links in ``staging``, else beside the first path, else copies."""
    for path in paths:
        if not path.exists():
            raise InvalidValueError(f"checkpoint file {path} does not exist")
    label = f"{os.getpid()}-{next(_COUNTER)}-{name}"
    for root in (staging, paths[0].parent / _SIDE_STAGING):
        folder = root / label
        try:
            folder.mkdir(parents=True)
            return folder, [_place(p, folder / p.name, os.link) for p in paths]
        except OSError:
            shutil.rmtree(folder, ignore_errors=True)
    folder = staging / label
    folder.mkdir(parents=True)
    return folder, [_place(p, folder / p.name, shutil.copy2) for p in paths]


def _place(source: Path, target: Path, link: Any) -> Path:
    if source.is_dir():
        shutil.copytree(source, target, copy_function=link)
    else:
        link(source, target)
    return target


def _fingerprint(paths: list[Path]) -> list[tuple[str, int, int]]:
    out = []
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            info = f.stat()
            out.append((str(f), info.st_size, info.st_mtime_ns))
    return out


def _remove_dead_staging(staging: Path) -> None:
    """Staged copies a killed run left behind (their process is gone)."""
    try:
        entries = list(staging.iterdir())
    except OSError:
        return
    for entry in entries:
        pid = entry.name.split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)

