"""Experiments, their checkpoints, promotion to model versions, and events.

An experiment is addressed like a model (``ai/vision/yolo-run-17``) and its checkpoints
like versions (``ai/vision/yolo-run-17@epoch-3``); one name is either a model or an
experiment, never both. Creating what exists returns it unchanged (a restarted training
job can call ``new_experiment`` again). Promoting a checkpoint makes a model version that
points at the same stored objects: nothing is uploaded again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelbox import layout, limits
from modelbox.audit import Change, TagMove
from modelbox.collisions import check_full_name, refuse_case_twin
from modelbox.errors import (
    AlreadyExistsError,
    InvalidValueError,
    NotFoundError,
    TagConflictError,
)
from modelbox.frameworks import MLFramework
from modelbox.manifests import (
    CheckpointManifest,
    EventLog,
    EventRecord,
    ExperimentManifest,
    VersionManifest,
    now,
    parse,
)
from modelbox.names import CHECKPOINT_ALIASES, ModelName, Reference, check_segment
from modelbox.registry import Registry, Transaction, framework_of, json_metadata, manifest_paths


@dataclass(frozen=True)
class Event:
    """``Event("deployed", source="k8s/prod", wallclock=..., metadata={...})``."""

    name: str
    source: str = ""
    wallclock: float | None = None  # seconds since the epoch; now when omitted
    metadata: dict[str, Any] = field(default_factory=dict)

    def record(self) -> EventRecord:
        if not self.name or any(ord(c) < 32 for c in self.name):
            raise InvalidValueError(f"invalid event name {self.name!r}: it must be non-empty text")
        for label, text in (("name", self.name), ("source", self.source)):
            try:
                limits.check_value(text)
            except limits.LimitError as exc:
                raise InvalidValueError(f"invalid event {label} {text!r}: it {exc}") from None
        when = time.time() if self.wallclock is None else float(self.wallclock)
        return EventRecord(name=self.name, source=self.source, wallclock=when,
                           metadata=json_metadata(self.metadata))

    @classmethod
    def of(cls, record: EventRecord) -> Event:
        return cls(record.name, record.source, record.wallclock, dict(record.metadata))


def create_experiment(
    registry: Registry,
    experiment: ModelName,
    *,
    owner: str = "",
    task: str = "",
    framework: MLFramework | str = MLFramework.UNKNOWN,
    external_id: str = "",
    metadata: dict[str, Any] | None = None,
) -> ExperimentManifest:
    """Create an experiment, or return the existing one of that name."""
    check_full_name("experiment", experiment)
    path = layout.experiment_file(experiment)
    with registry.transaction() as txn:
        data = txn.snapshot.read(path)
        if data is not None:
            return parse(ExperimentManifest, path, data)
        if txn.snapshot.read(layout.model_file(experiment)) is not None:
            raise AlreadyExistsError(f"{experiment} is a model; choose another experiment name")
        refuse_case_twin(txn.snapshot, "experiment", layout.experiment_dir(experiment))
        manifest = ExperimentManifest(
            namespace=experiment.namespace, name=experiment.name, owner=owner, task=task,
            framework=framework_of(framework), external_id=external_id,
            metadata=json_metadata(metadata), created_at=now(),
        )
        txn.put(path, manifest)
        txn.change = Change("experiment.create", str(experiment), f"experiment create {experiment}")
    return manifest


def update_experiment(
    registry: Registry, experiment: ModelName, *, best_by: str | None = None,
    best_direction: str | None = None, clear_best: bool = False,
) -> ExperimentManifest:
    """Set (or clear) the metric and direction ``EXP:best`` ranks checkpoints by (one
    ``experiment.update`` commit; none when nothing changes)."""
    if not clear_best:
        if not best_by or any(ord(c) < 32 for c in best_by):
            raise InvalidValueError(f"--best-by wants a metric name, got {best_by!r}")
        if best_direction not in ("min", "max"):
            raise InvalidValueError("--best-by needs --min (lower is better) or --max")
    path = layout.experiment_file(experiment)
    with registry.transaction() as txn:
        data = txn.snapshot.read(path)
        get_experiment_in(data, experiment)
        old = parse(ExperimentManifest, path, data or b"")
        new = old.model_copy(update={"best_by": None if clear_best else best_by,
                                     "best_direction": None if clear_best else best_direction})
        new = ExperimentManifest.model_validate(new.model_dump(mode="json"), strict=False)
        if new != old:
            txn.put(path, new)
            txn.change = Change(
                "experiment.update", str(experiment),
                f"experiment update {experiment} best-by "
                + ("(none)" if clear_best else f"{best_by} ({best_direction})"),
                before=f"{old.best_by} ({old.best_direction})" if old.best_by else None,
                after=None if clear_best else f"{best_by} ({best_direction})")
    return new


def get_experiment(registry: Registry, experiment: ModelName) -> ExperimentManifest:
    path = layout.experiment_file(experiment)
    data = registry.snapshot().read(path)
    if data is None:
        raise NotFoundError(f"experiment {experiment} does not exist; "
                            "`modelbox experiment list` shows the experiments there are")
    return parse(ExperimentManifest, path, data)


def list_experiments(registry: Registry, namespace: str | None = None) -> list[ExperimentManifest]:
    """Every experiment, or those in ``namespace`` and below."""
    snap = registry.snapshot()
    out = [
        parse(ExperimentManifest, path, snap.read(path) or b"")
        for path in manifest_paths(snap, layout.EXPERIMENTS, layout.EXPERIMENT_FILE, namespace)
    ]
    return sorted(out, key=lambda e: (e.namespace, e.name))


def create_checkpoint(
    registry: Registry,
    experiment: ModelName,
    checkpoint: str,
    *,
    epoch: int | None = None,
    step: int | None = None,
    metadata: dict[str, Any] | None = None,
) -> CheckpointManifest:
    """Create a checkpoint of an experiment, or return the existing one."""
    check_segment("checkpoint", checkpoint)
    if checkpoint in CHECKPOINT_ALIASES:
        raise InvalidValueError(
            f"a checkpoint cannot be named {checkpoint!r}: {experiment}:{checkpoint} is "
            f"computed by modelbox ({', '.join(sorted(CHECKPOINT_ALIASES))} are reserved); "
            "choose another name"
        )
    for label, number in (("epoch", epoch), ("step", step)):
        if number is not None and (isinstance(number, bool) or not isinstance(number, int)
                                   or number < 0):
            raise InvalidValueError(f"{label} must be a whole number, got {number!r}")
    path = layout.checkpoint_file(experiment, checkpoint)
    with registry.transaction() as txn:
        get_experiment_in(txn.snapshot.read(layout.experiment_file(experiment)), experiment)
        data = txn.snapshot.read(path)
        if data is not None:
            return parse(CheckpointManifest, path, data)
        refuse_case_twin(txn.snapshot, "checkpoint", layout.checkpoint_dir(experiment, checkpoint))
        manifest = CheckpointManifest(
            experiment=str(experiment), checkpoint=checkpoint, epoch=epoch, step=step,
            metadata=json_metadata(metadata), created_at=now(),
        )
        txn.put(path, manifest)
        txn.change = Change("checkpoint.create", f"{experiment}@{checkpoint}",
                            f"checkpoint create {experiment}@{checkpoint}")
    return manifest


def get_experiment_in(data: bytes | None, experiment: ModelName) -> None:
    if data is None:
        raise NotFoundError(f"experiment {experiment} does not exist; create it first")


def list_checkpoints(registry: Registry, experiment: ModelName) -> list[CheckpointManifest]:
    """The experiment's checkpoints in the order they were made."""
    snap = registry.snapshot()
    get_experiment_in(snap.read(layout.experiment_file(experiment)), experiment)
    folder = f"{layout.experiment_dir(experiment)}/{layout.CHECKPOINTS_DIR}"
    out = []
    for name, is_dir in snap.listdir(folder):
        path = f"{folder}/{name}/{layout.CHECKPOINT_FILE}"
        if is_dir and (data := snap.read(path)) is not None:
            out.append(parse(CheckpointManifest, path, data))
    return sorted(out, key=lambda c: (c.created_at, c.checkpoint))


def promote(
    registry: Registry, experiment: ModelName, checkpoint: str, model: ModelName, version: str,
    *, tags: list[str] | None = None,
) -> VersionManifest:
    """Make ``model@version`` from a checkpoint: its artifacts (same objects, no upload),
    metrics summary and metadata, with ``source_checkpoint`` recorded for lineage (one
    ``checkpoint.promote`` commit)."""
    with registry.transaction() as txn:
        made = promote_in(registry, txn, experiment, checkpoint, model, version)
        for tag in dict.fromkeys(tags or []):
            current = registry.tags_in(txn.snapshot, model)
            if tag in current:
                raise TagConflictError(str(model), tag, current[tag])
            registry.tag_in(txn, model, made.version, tag)
            assert txn.change is not None
            txn.change.tag_moves.append(TagMove(f"{model}:{tag}", None, made.version))
    return registry.get_version(model, made.version)


def promote_in(
    registry: Registry, txn: Transaction, experiment: ModelName, checkpoint: str,
    model: ModelName, version: str | None,
) -> VersionManifest:
    """Stage :func:`promote` inside ``txn`` (``version`` None: the next ``vN``); the
    caller may add tags to the same commit."""
    snap = txn.snapshot
    ckpt_path = layout.checkpoint_file(experiment, checkpoint)
    data = snap.read(ckpt_path)
    if data is None:
        raise NotFoundError(f"checkpoint {experiment}@{checkpoint} does not exist")
    source = parse(CheckpointManifest, ckpt_path, data)
    pointers_dir = f"{layout.checkpoint_dir(experiment, checkpoint)}/{layout.ARTIFACTS_DIR}"
    experiment_manifest = parse(ExperimentManifest, layout.experiment_file(experiment),
                                snap.read(layout.experiment_file(experiment)) or b"")
    origin = f"{experiment}@{checkpoint}"
    created = registry.create_version_in(
        txn, model, version, description=f"promoted from {origin}",
        framework=experiment_manifest.framework,
        metadata={**source.metadata, "source_checkpoint": origin},
    )
    target_dir = layout.version_dir(model, created.version)
    for rel in _files_under(snap, pointers_dir):
        pointer = snap.read(f"{pointers_dir}/{rel}")
        assert pointer is not None
        txn.writes[f"{target_dir}/{layout.ARTIFACTS_DIR}/{rel}"] = pointer
    created = created.model_copy(update={"metrics": dict(source.metrics)})
    txn.put(layout.version_file(model, created.version), created)
    txn.put(ckpt_path, source.model_copy(
        update={"promoted_to": [*source.promoted_to, f"{model}@{created.version}"]}))
    txn.change = Change(
        "checkpoint.promote", f"{model}@{created.version}",
        f"promote {origin} to {model}@{created.version}",
        before=origin, after=f"{model}@{created.version}",
    )
    return created


def _files_under(snap: Any, folder: str) -> list[str]:
    out, stack = [], [""]
    while stack:
        rel = stack.pop()
        for name, is_dir in snap.listdir(f"{folder}/{rel}".rstrip("/")):
            child = f"{rel}/{name}" if rel else name
            (stack.append(child) if is_dir else out.append(child))
    return sorted(out)


def log_events(registry: Registry, ref: Reference, events: list[Event]) -> None:
    """Append events to any object's ``_events.json`` (one commit)."""
    if not events:
        return
    with registry.transaction() as txn:
        path, _, target = registry.target(txn.snapshot, ref)
        events_path = path.rsplit("/", 1)[0] + "/" + layout.EVENTS_FILE
        data = txn.snapshot.read(events_path)
        current = parse(EventLog, events_path, data) if data else EventLog()
        txn.put(events_path, EventLog(events=[*current.events, *(e.record() for e in events)]))
        names = ", ".join(dict.fromkeys(e.name for e in events))
        txn.change = Change("event.log", target, f"event {target} {names}", after=names)


def list_events(registry: Registry, ref: Reference, since: datetime | None = None) -> list[Event]:
    """Events of an object in logging order, those at or after ``since`` only if given."""
    snap = registry.snapshot()
    path, _, _ = registry.target(snap, ref)
    events_path = path.rsplit("/", 1)[0] + "/" + layout.EVENTS_FILE
    data = snap.read(events_path)
    records = parse(EventLog, events_path, data).events if data else []
    cutoff = since.timestamp() if since is not None else float("-inf")
    return [Event.of(r) for r in records if r.wallclock >= cutoff]


def merge_metadata(registry: Registry, ref: Reference, values: dict[str, Any]) -> list[str]:
    """Set several metadata keys of one object in one commit (a resumed training run's
    hyperparameters); return the keys that changed (none: no commit)."""
    clean = json_metadata(values)
    with registry.transaction() as txn:
        path, manifest, target = registry.target(txn.snapshot, ref)
        changed = [k for k, v in clean.items() if manifest.metadata.get(k, ...) != v]
        if not changed:
            return []
        merged = {**manifest.metadata, **clean}
        txn.put(path, manifest.model_copy(update={"metadata": merged}))
        shown = ", ".join(changed[:8]) + (f" (+{len(changed) - 8})" if len(changed) > 8 else "")
        txn.change = Change(f"{manifest.kind}.update", target, f"meta set {target} {shown}")
    return changed
