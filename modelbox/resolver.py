"""One resolver: every reference a command or API call takes becomes a target here.

The forms, for models and collections alike:

* ``M@V``     the version ``V`` (archived ones included);
* ``M:TAG``   the version carrying the unique ``TAG``;
* ``M:latest`` the newest non-archived version by creation (computed, never stored);
* ``C:vN``    for a collection, its version ``vN`` when no tag ``vN`` exists (W&B's way of
  naming a collection's versions);
* ``M``       the model itself, for what a model carries (metadata, metrics, artifacts);
  where a version is needed it is a usage error (exit 2) with a hint.

Experiments are addressed ``EXP`` and ``EXP@CHECKPOINT``, and through two computed
aliases (:func:`_experiment_alias`): ``EXP:latest``, the newest checkpoint (archived or
not), and ``EXP:best``, the best one that is not archived by the experiment's ``best_by``
metric; no other tag names a checkpoint.

A wrong form gets a "did you mean": ``M#stage`` (GTO's syntax, in :mod:`modelbox.names`),
``M:v1`` where ``v1`` is a version and no tag, ``M@prod`` where ``prod`` is a tag.

Only plain ``json`` is used (tag maps through :mod:`modelbox.documents`, version documents
through :func:`modelbox.limits.loads`): ``modelbox resolve`` never imports pydantic.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from modelbox import isotime, layout, limits
from modelbox.documents import parse_tags
from modelbox.errors import (
    DanglingTagError,
    InvalidValueError,
    ModelNotFoundError,
    NotFoundError,
    TagNotFoundError,
    VersionNeededError,
    VersionNotFoundError,
)
from modelbox.names import CHECKPOINT_ALIASES, RESERVED_TAGS, ModelName, Reference

if TYPE_CHECKING:
    from modelbox.refs.trees import CommitFiles

__all__ = ["Target", "need_version", "resolve", "resolve_version"]

_NUMBERED = re.compile(r"v\d+")


class Target(NamedTuple):
    """What a reference names: a model or experiment (``version`` None), a version of a
    model, or a checkpoint of an experiment."""

    model: ModelName
    version: str | None = None
    experiment: bool = False
    #: the tag the version was found through (``latest``, ``vN`` included), else None:
    #: where a check that depends on how a version was named (a protected tag) looks
    tag: str | None = None

    @property
    def path(self) -> str:
        """The manifest file of the target."""
        if self.experiment:
            if self.version is None:
                return layout.experiment_file(self.model)
            return layout.checkpoint_file(self.model, self.version)
        if self.version is None:
            return layout.model_file(self.model)
        return layout.version_file(self.model, self.version)

    def __str__(self) -> str:
        return str(self.model) if self.version is None else f"{self.model}@{self.version}"


def need_version(ref: Reference, *, experiment: bool = False) -> None:
    """Refuse a bare ``M`` where a version is needed (a usage error, exit 2)."""
    if ref.version is None and ref.tag is None:
        if experiment:
            raise VersionNeededError(
                f"a checkpoint is needed: {ref.model}@CHECKPOINT "
                f"(`modelbox checkpoint list {ref.model}` shows them)"
            )
        raise VersionNeededError(
            f"a version is needed: {ref.model}@VERSION or {ref.model}:TAG "
            f"(e.g. {ref.model}:latest)"
        )


def resolve_version(snap: CommitFiles, ref: Reference) -> str:
    """The version of a model or collection that ``ref`` names (a bare ``M`` is refused)."""
    version = resolve(snap, ref, version_needed=True, experiments=False).version
    assert version is not None  # version_needed
    return version


def resolve(
    snap: CommitFiles, ref: Reference, *, version_needed: bool = False, experiments: bool = True,
) -> Target:
    """The target ``ref`` names in ``snap``; raises a one-line error (with a "did you mean"
    where one fits) if it names nothing."""
    model_doc = snap.read(layout.model_file(ref.model))
    if model_doc is None:
        if snap.read(layout.experiment_file(ref.model)) is None:
            raise ModelNotFoundError(str(ref.model))
        if not experiments:
            raise InvalidValueError(
                f"{ref.model} is an experiment, not a model; make a version of one of its "
                f"checkpoints with `modelbox checkpoint promote {ref.model}@CHECKPOINT "
                "MODEL@VERSION`"
            )
        return _experiment(snap, ref, version_needed)
    if ref.version is None and ref.tag is None:
        if version_needed:
            need_version(ref)
        return Target(ref.model)
    if ref.version is not None:
        if snap.read(layout.version_file(ref.model, ref.version)) is None:
            raise VersionNotFoundError(str(ref.model), ref.version,
                                       hint=_tag_hint(snap, ref.model, ref.version))
        return Target(ref.model, ref.version)
    assert ref.tag is not None
    return Target(ref.model, _by_tag(snap, ref.model, ref.tag, model_doc), tag=ref.tag)


def _by_tag(snap: CommitFiles, model: ModelName, tag: str, model_doc: bytes) -> str:
    if tag in RESERVED_TAGS:  # `latest`, computed
        newest = _latest(snap, model)
        if newest is None:
            raise TagNotFoundError(
                str(model), tag, hint=f"{model} has no version that is not archived"
            )
        return newest
    version = _tags(snap, model).get(tag)
    if version is not None:
        if snap.read(layout.version_file(model, version)) is None:
            # A hand-edited tag map: never name a version that is not there.
            raise DanglingTagError(str(model), tag, version)
        return version
    is_version = snap.read(layout.version_file(model, tag)) is not None
    if is_version and _NUMBERED.fullmatch(tag) and _is_collection(model_doc):
        return tag  # C:vN, a collection's version by number
    raise TagNotFoundError(
        str(model), tag, hint=f"did you mean {model}@{tag}? ({tag} is a version)"
        if is_version else None,
    )


def _tag_hint(snap: CommitFiles, model: ModelName, version: str) -> str | None:
    if version in RESERVED_TAGS or version in _tags(snap, model):
        return f"did you mean {model}:{version}? ({version} is a tag)"
    return None


def _tags(snap: CommitFiles, model: ModelName) -> dict[str, str]:
    path = layout.tags_file(model)
    data = snap.read(path)
    return {} if data is None else parse_tags(path, data)


def _doc(data: bytes | None, kind: str) -> dict[str, Any] | None:
    if data is None:
        return None
    try:
        doc = limits.loads(data, kind)
    except ValueError:  # JSON and limit errors: `check` reports the file
        return None
    return doc if isinstance(doc, dict) else None


def _is_collection(model_doc: bytes) -> bool:
    doc = _doc(model_doc, "model")
    return doc is not None and doc.get("collection") is True


def _latest(snap: CommitFiles, model: ModelName) -> str | None:
    """The newest non-archived version by creation time (then by name), or None."""
    best: tuple[datetime, str] | None = None
    for name, is_dir in snap.listdir(layout.versions_dir(model)):
        path = layout.version_file(model, name)
        data = snap.read(path) if is_dir else None
        if data is None:
            continue  # no version here (`check` reports a stray folder)
        doc = _doc(data, "version")
        when = None if doc is None else _when(doc.get("created_at"))
        if doc is None or when is None:
            # Not plain: let the full parser read it, or say what is wrong with it.
            from modelbox.manifests import VersionManifest, parse

            manifest = parse(VersionManifest, path, data)
            doc, when = {"archived": manifest.archived}, manifest.created_at
        if doc.get("archived") is True:
            continue
        if best is None or (when, name) > best:
            best = (when, name)
    return None if best is None else best[1]


def _when(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = isotime.parse(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def _experiment(snap: CommitFiles, ref: Reference, version_needed: bool) -> Target:
    if ref.tag is not None:
        return _experiment_alias(snap, ref, ref.tag)
    if ref.version is None:
        if version_needed:
            need_version(ref, experiment=True)
        return Target(ref.model, experiment=True)
    if snap.read(layout.checkpoint_file(ref.model, ref.version)) is None:
        raise NotFoundError(
            f"checkpoint {ref} does not exist; `modelbox checkpoint list {ref.model}` "
            "shows its checkpoints"
        )
    return Target(ref.model, ref.version, experiment=True)


def _experiment_alias(snap: CommitFiles, ref: Reference, tag: str) -> Target:
    """``EXP:latest`` (the newest checkpoint, archived or not: what a preempted job resumes
    from) and ``EXP:best`` (the best checkpoint that is not archived, by the experiment's
    ``best_by`` metric and ``best_direction``; the newest among equals)."""
    if tag not in CHECKPOINT_ALIASES:
        raise InvalidValueError(
            f"{ref}: experiments have no tags, only {ref.model}:latest and {ref.model}:best; "
            f"name a checkpoint as {ref.model}@CHECKPOINT (`modelbox checkpoint list "
            f"{ref.model}` shows them)"
        )
    found = _checkpoints(snap, ref.model)
    if tag == "latest":
        if not found:
            raise NotFoundError(f"{ref}: {ref.model} has no checkpoint yet")
        return Target(ref.model, max(order for order, _ in found)[1], experiment=True,
                      tag=tag)
    experiment = _doc(snap.read(layout.experiment_file(ref.model)), "experiment") or {}
    metric, direction = experiment.get("best_by"), experiment.get("best_direction")
    if not isinstance(metric, str) or direction not in ("min", "max"):
        raise InvalidValueError(
            f"{ref}: {ref.model} has no best metric; set one with `modelbox experiment "
            f"update {ref.model} --best-by METRIC --min` (or --max)"
        )
    sign = 1.0 if direction == "max" else -1.0
    scored = []
    for order, archived, metrics in _checkpoint_docs(found):
        value = metrics.get(metric)
        if archived or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        scored.append((sign * float(value), order))
    if not scored:
        raise NotFoundError(
            f"{ref}: no checkpoint of {ref.model} that is not archived has the metric "
            f"{metric!r}; log it (`modelbox metrics log {ref.model}@CHECKPOINT "
            f"{metric}=VALUE`) or choose another with `modelbox experiment update "
            f"{ref.model} --best-by METRIC`"
        )
    return Target(ref.model, max(scored)[1][1], experiment=True, tag=tag)


_Order = tuple[datetime, str]


def _checkpoints(snap: CommitFiles, experiment: ModelName,
                 ) -> list[tuple[_Order, dict[str, Any]]]:
    """Every checkpoint with its creation order and its plain document."""
    folder = f"{layout.experiment_dir(experiment)}/{layout.CHECKPOINTS_DIR}"
    out = []
    for name, is_dir in snap.listdir(folder):
        path = f"{folder}/{name}/{layout.CHECKPOINT_FILE}"
        data = snap.read(path) if is_dir else None
        if data is None:
            continue
        doc = _doc(data, "checkpoint")
        when = None if doc is None else _when(doc.get("created_at"))
        if doc is None or when is None:
            from modelbox.manifests import CheckpointManifest, parse

            manifest = parse(CheckpointManifest, path, data)  # or say what is wrong
            doc, when = manifest.model_dump(mode="json"), manifest.created_at
        out.append(((when, name), doc))
    return out


def _checkpoint_docs(found: list[tuple[_Order, dict[str, Any]]],
                     ) -> list[tuple[_Order, bool, dict[str, Any]]]:
    """``(order, archived, metrics)`` of each checkpoint."""
    out = []
    for order, doc in found:
        metrics = doc.get("metrics")
        out.append((order, doc.get("archived") is True,
                    metrics if isinstance(metrics, dict) else {}))
    return out
