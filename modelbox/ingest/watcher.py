"""Ingest each whole checkpoint a trainer writes into a folder, exactly once.

"Already ingested" is read from the registry itself: each ingested checkpoint's manifest
records ``metadata.ingest = {source, fingerprint, layout}``, and a checkpoint is written
(manifest, artifacts, metrics, event) in one commit, which lands whole or not at all
(:meth:`Registry.transaction`, through the recovery journal). So a watcher killed between the
upload and the commit uploads again next time (the store keeps what it has) and never
makes a second checkpoint; the check is repeated under the registry lock, so two watchers
of one folder cannot both ingest it either. Nothing else is remembered: no local cache can
disagree with the registry.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelbox import layout, lifecycle
from modelbox.audit import Change
from modelbox.collisions import refuse_case_twin
from modelbox.errors import ArtifactError, InvalidValueError, MetricsFileError, ModelboxError
from modelbox.ingest import layouts
from modelbox.ingest import metrics as parsers
from modelbox.ingest.layouts import Candidate
from modelbox.ingest.metrics import Point
from modelbox.manifests import (
    ArtifactPointer,
    CheckpointManifest,
    EventLog,
    MetricPoint,
    MetricSeries,
    parse,
)
from modelbox.manifests import now as manifest_now
from modelbox.names import ModelName, fold
from modelbox.processes import yield_cpu
from modelbox.registry import (
    Registry,
    Transaction,
    json_metadata,
    merge_metric_points,
    metric_points,
)

INGEST_KEY = "ingest"  # the checkpoint metadata key that records where it came from
EVENT = "checkpoint.ingested"


@dataclass(frozen=True)
class Ingested:
    """What one ingest did."""

    checkpoint: str  # EXPERIMENT@CHECKPOINT
    source: str
    layout: str
    files: int
    bytes: int
    points: int  # new metric points on the experiment
    seconds: float
    decisions: list[dict[str, Any]] = field(default_factory=list)  # the policy's

    def to_json(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "source": self.source, "layout": self.layout,
                "files": self.files, "bytes": self.bytes, "points": self.points,
                "seconds": round(self.seconds, 3), "decisions": self.decisions}

    def line(self) -> str:
        done = "".join(f"; {d['action']} {d['target'] or d['checkpoint']}"
                       for d in self.decisions)
        return (f"Ingested {self.checkpoint} from {self.source} ({self.layout}, "
                f"{self.files} file(s), {self.bytes} bytes, {self.points} new metric "
                f"point(s), {self.seconds:.1f} s){done}")


def ingested_sources(registry: Registry, experiment: ModelName) -> dict[tuple[str, str], str]:
    """(source, fingerprint) -> checkpoint id of every checkpoint ingested from a folder."""
    out = {}
    for manifest in lifecycle.list_checkpoints(registry, experiment):
        record = manifest.metadata.get(INGEST_KEY)
        if isinstance(record, dict):
            key = (str(record.get("source")), str(record.get("fingerprint")))
            out[key] = manifest.checkpoint
    return out


Summary = dict[str, tuple[int, float]]  # key -> (step, value): the newest at or before


def _fold(summary: Summary, points: list[Point], position: int | None) -> None:
    """Fold ``points`` (in file order) into ``summary``: the newest value of each key at or
    before ``position`` (any, when None); a later point at the same step wins."""
    for key, step, value in points:
        if (position is None or step <= position) and step >= summary.get(key, (-1, 0))[0]:
            summary[key] = (step, value)


@dataclass(frozen=True)
class _Followed:
    """A metrics CSV as far as it was ingested: the reader's mark, the newest value of
    each key among the rows at or before ``upto``, and the rows read past it (what the
    trainer logged after the last checkpoint: a few rows, never the whole series)."""

    path: Path
    mark: parsers.CsvMark | None = None
    best: Summary = field(default_factory=dict)
    upto: int = -1
    later: tuple[Point, ...] = ()

    def take(self, candidate: Candidate) -> tuple[list[Point], Summary, _Followed]:
        """The rows new since the mark, the file's summary for ``candidate``, and what to
        keep once it has landed. Raise MetricsFileError."""
        reader = parsers.CsvFollower(self.path, self.mark)
        column, rows, mark, from_start = reader.read()
        position = candidate.step
        if column == "epoch":  # Keras: CSV epochs count from 0, file names from 1
            position = None if candidate.epoch is None else candidate.epoch - 1
        best, upto, later = ({}, -1, tuple(rows)) if from_start else (
            self.best, self.upto, self.later + tuple(rows))
        if position is not None and position < upto:
            # Older than a checkpoint already ingested: its summary needs rows that were
            # folded away. Read the whole file again (rare; rows are deduplicated).
            column, rows, mark, _ = parsers.CsvFollower(self.path).read()
            best, upto, later = {}, -1, tuple(rows)
        summary = dict(best)
        _fold(summary, list(later), position)
        if position is None:
            upto = max([upto, *(step for _, step, _ in later)])
            later = ()
        else:
            upto = max(upto, position)
            later = tuple(p for p in later if p[1] > upto)
        return rows, summary, _Followed(self.path, mark, summary, upto, later)


class Watcher:
    """Polls ``folder`` and ingests whole checkpoints into ``experiment`` (created when
    missing). ``on_ingested`` and ``on_warning`` get one call per event; each warning is
    given once per watcher."""

    def __init__(
        self, registry: Registry, experiment: ModelName, folder: Path, *,
        on_ingested: Callable[[Ingested], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        if not folder.is_dir():
            raise ArtifactError(f"{folder}: no such folder to watch")
        self.registry, self.experiment, self.folder = registry, experiment, folder
        self._on_ingested = on_ingested or (lambda _: None)
        self._on_warning = on_warning or (lambda _: None)
        self._warned: set[str] = set()
        self._done: set[tuple[str, str]] | None = None
        self._csv: dict[Path, _Followed] = {}  # how far each metrics CSV was ingested
        self._series_path = f"{layout.experiment_dir(experiment)}/{layout.METRICS_FILE}"

    def warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self._on_warning(message)

    def poll(self, stop: threading.Event | None = None) -> list[Ingested]:
        """One look at the folder: ingest every whole checkpoint not ingested yet, oldest
        first (until ``stop`` is set). A checkpoint that fails (its files vanish, the store
        is down) is warned about and tried again at the next poll."""
        if self._done is None:
            lifecycle.create_experiment(self.registry, self.experiment)
            self._done = set(ingested_sources(self.registry, self.experiment))
        found = layouts.scan(self.folder, self._done)
        for link in found.links:
            self.warn(f"{link}: a symbolic link; skipped, never followed")
        out = []
        ready = []
        for candidate in found.candidates:
            if not candidate.complete:
                continue
            if candidate.problem:
                self.warn(f"{candidate.source}: not ingested: {candidate.problem}")
                continue
            try:
                fingerprint = candidate.fingerprint()
                mtime = candidate.path.stat().st_mtime
            except OSError:
                continue  # removed while we looked (a trainer rotating checkpoints)
            if (candidate.source, fingerprint) not in self._done:
                ready.append((mtime, candidate, fingerprint))
        for _, candidate, fingerprint in sorted(ready, key=lambda r: (r[0], r[1].source)):
            if stop is not None and stop.is_set():
                break
            try:
                made = self.ingest(candidate, fingerprint, found.metric_files)
            except ModelboxError as exc:
                self.warn(f"{candidate.source}: not ingested yet: {exc}")
                continue
            self._done.add((candidate.source, fingerprint))
            if made is not None:
                out.append(made)
                self._on_ingested(made)
        return out

    # -- one checkpoint --------------------------------------------------------------------
    def _points(self, candidate: Candidate, metric_files: list[Path]) -> tuple[
            list[Point], dict[str, tuple[int, float]], list[Callable[[], None]]]:
        """The experiment's points this checkpoint's files carry (of a CSV: the rows
        appended since the last ingest), its summary (the newest value of each key at or
        before the checkpoint) and what to remember once it has landed."""
        points: list[Point] = []
        settle: list[Callable[[], None]] = []
        try:
            if candidate.layout == "huggingface":
                _, points = parsers.trainer_state(candidate.path / layouts.HF_STATE)
            elif (candidate.layout == "plain"
                  and (candidate.path / layouts.PLAIN_METRICS).is_file()):
                points = parsers.metrics_json(candidate.path / layouts.PLAIN_METRICS,
                                              candidate.step)
        except MetricsFileError as exc:
            self.warn(f"warning: {exc}; {candidate.source} is ingested without its metrics")
            points = []
        summary: dict[str, tuple[int, float]] = {}
        if candidate.layout in ("huggingface", "plain"):
            _fold(summary, points, candidate.step)
            return points, summary, settle
        for path in metric_files:
            follow = self._csv.get(path) or _Followed(path)
            try:
                fresh, own, after = follow.take(candidate)
            except MetricsFileError as exc:
                self.warn(f"warning: {exc}; checkpoints are ingested without its metrics")
                continue
            points.extend(fresh)
            _fold(summary, [(k, s, v) for k, (s, v) in own.items()], None)
            settle.append(functools.partial(self._csv.__setitem__, path, after))
        return points, summary, settle

    def ingest(self, candidate: Candidate, fingerprint: str,
               metric_files: list[Path] | None = None) -> Ingested | None:
        """Ingest one whole checkpoint as ONE commit (manifest with its metric summary,
        artifact pointers, the experiment's new points, the checkpoint's points and an
        event); None if it is in the registry already (checked again under the lock).
        The files are uploaded before the lock is taken: other writers never wait for an
        upload, and a kill before the commit leaves only unreferenced objects."""
        from modelbox import artifacts

        started = time.monotonic()
        points, summary, settle = self._points(candidate, metric_files or [])
        registry, experiment = self.registry, self.experiment
        record = {"source": candidate.source, "fingerprint": fingerprint,
                  "layout": candidate.layout}
        ident = self._name(candidate, fingerprint)
        staged = artifacts.stage(registry, layout.checkpoint_dir(experiment, ident),
                                 list(candidate.files), progress=False)
        seen_decisions = len(registry.decisions)
        with registry.transaction() as txn:
            done = ingested_sources(registry, experiment)
            if (candidate.source, fingerprint) in done:
                return None
            ident = self._name(candidate, fingerprint)  # again: another writer may have won
            fresh = self._write(txn, ident, candidate, record, staged.pointers, points,
                                summary)
        staged.settle()
        for remember in settle:  # it landed: the next read starts past these rows
            remember()
        # The registry ran the experiment's policy (modelbox/autopromote.py) at the end of
        # that commit's batch: promotion and retention are commits of the same batch.
        decisions = [d.to_json() for d in registry.decisions[seen_decisions:]]
        return Ingested(f"{experiment}@{ident}", candidate.source, candidate.layout,
                        sum(p.files or 1 for p in staged.pointers),
                        sum(p.size or 0 for p in staged.pointers), fresh,
                        time.monotonic() - started, decisions)

    def _name(self, candidate: Candidate, fingerprint: str) -> str:
        """Its checkpoint name: from the file name, with the fingerprint's start when that
        name is taken (a trainer writing ``model.keras`` or ``last.ckpt`` again)."""
        ident = layouts.checkpoint_id(candidate)
        taken = {c.checkpoint.casefold() for c in
                 lifecycle.list_checkpoints(self.registry, self.experiment)}
        return f"{ident[:90]}-{fingerprint[:8]}" if ident.casefold() in taken else ident

    def _append(self, txn: Transaction, points: list[Point], now: float) -> int:
        """Add ``points`` the experiment's series lacks (by key and step) in ``txn``;
        return how many."""
        series_path, registry = self._series_path, self.registry
        series = registry.read_series(txn, series_path)
        count = 0
        if series is not None:  # the usual document: only the new points are encoded
            added: set[str] = set()
            for key, step, value in points:
                if series.add(key, step, value, now):
                    added.add(key)
                    count += 1
            series.order(added)
            registry.write_series(txn, series_path, series, changed=bool(added))
        else:  # a document of another shape: the general path
            data = txn.snapshot.read(series_path)
            current = parse(MetricSeries, series_path, data) if data else None
            seen: set[tuple[str, int | None]] = set()
            if current is not None:
                for key, held in current.series.items():
                    seen.update((key, point.step) for point in held)
            fresh: list[tuple[str, MetricPoint]] = []
            for key, step, value in points:
                if (key, step) not in seen:
                    seen.add((key, step))
                    fresh.extend(metric_points({key: value}, step=step, wallclock=now))
            if fresh:
                txn.put(series_path, merge_metric_points(current, series_path, fresh)[0])
            count = len(fresh)
        return count

    def _write(self, txn: Transaction, ident: str, candidate: Candidate,
               record: dict[str, str], pointers: list[ArtifactPointer], points: list[Point],
               summary: dict[str, tuple[int, float]]) -> int:
        """Stage the checkpoint's files in ``txn``; return the experiment's new points."""
        from modelbox import artifacts

        experiment, snap = self.experiment, txn.snapshot
        folder = layout.checkpoint_dir(experiment, ident)
        refuse_case_twin(snap, "checkpoint", folder)
        now = time.time()
        count = self._append(txn, points, now)
        own = [p for key, (step, value) in summary.items()
               for p in metric_points({key: value}, step=step, wallclock=now)]
        merged, latest = merge_metric_points(None, f"{folder}/{layout.METRICS_FILE}", own)
        if own:
            txn.put(f"{folder}/{layout.METRICS_FILE}", merged)
        txn.put(layout.checkpoint_file(experiment, ident), CheckpointManifest(
            experiment=str(experiment), checkpoint=ident, epoch=candidate.epoch,
            step=candidate.step, metadata=json_metadata({INGEST_KEY: record}),
            metrics=latest, created_at=manifest_now()))
        if len({fold(p.path) for p in pointers}) != len(pointers):
            raise InvalidValueError(f"{candidate.source}: two files differ only in case")
        for pointer in pointers:
            txn.put(artifacts.pointer_path(folder, pointer), pointer)
        event = lifecycle.Event(EVENT, source="modelbox experiment watch", metadata=record)
        txn.put(f"{folder}/{layout.EVENTS_FILE}", EventLog(events=[event.record()]))
        target = f"{experiment}@{ident}"
        txn.change = Change("checkpoint.ingest", target, f"checkpoint ingest {target}",
                            after=json.dumps({**record, "files": len(pointers),
                                              "points": count}, sort_keys=True))
        return count


class WatchThread:
    """``Experiment.watch(folder)``: a :class:`Watcher` polling in a background thread with
    its own handle on the registry. ``stop()`` (or leaving the ``with`` block) ends it
    after one last look; ``ingested`` and ``warnings`` say what it did. ``nice`` runs the
    thread that much nicer (Linux; :func:`modelbox.processes.yield_cpu`), and the threads
    it starts with it (fsspec's I/O thread too, when it is the first to need one); 0, the
    default, leaves the calling process's scheduling alone."""

    def __init__(self, registry_path: Path, experiment: ModelName, folder: Path,
                 interval: float = 2.0, nice: int = 0) -> None:
        if not folder.is_dir():
            raise ArtifactError(f"{folder}: no such folder to watch")
        self.ingested: list[Ingested] = []
        self.warnings: list[str] = []
        self._stop = threading.Event()
        self._args = (registry_path, experiment, folder, interval)
        self._nice = nice
        self._thread = threading.Thread(target=self._main, name="modelbox-watch", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        path, experiment, folder, interval = self._args
        yield_cpu(self._nice)  # this thread only (and the upload threads it starts)
        registry = Registry.open(path)
        try:
            watcher = Watcher(registry, experiment, folder, on_ingested=self.ingested.append,
                              on_warning=self.warnings.append)
            while True:
                stopping = self._stop.is_set()
                try:
                    watcher.poll()
                except ModelboxError as exc:  # the registry is busy or broken: try again
                    watcher.warn(f"watching {folder} failed: {exc}")
                if stopping:
                    break
                self._stop.wait(interval)
        finally:
            registry.close()

    def stop(self, timeout: float | None = None) -> None:
        """Stop: one last look at the folder (the checkpoint a trainer just finished is
        ingested), then the thread ends; wait for it up to ``timeout`` seconds."""
        self._stop.set()
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> WatchThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
