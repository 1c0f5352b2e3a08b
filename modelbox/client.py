"""The Python API, shaped after the ModelBox client (``seeds/002`` and ``seeds/003``).

>>> client = ModelBoxClient("registry")
>>> model = client.new_model("yolo", "ml@example.com", "ai/vision", "object_detection", "")
>>> mv = model.new_model_version("v1", unique_tags=["staging"], framework=MLFramework.PYTORCH)
>>> mv.log_metrics({"acc": 0.91}, step=3)
>>> client.close()

Objects are snapshots of their manifest when fetched; :meth:`refresh` reads them again.
Every mutating call is one commit on the registry branch.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from modelbox import recovery
from modelbox.artifacts import Artifact
from modelbox.audit import AuditEvent
from modelbox.errors import (
    InvalidValueError,
    ModelboxError,
    NotFoundError,
    ReadOnlyRegistryError,
    TagConflictError,
)
from modelbox.frameworks import MLFramework
from modelbox.lifecycle import Event
from modelbox.manifests import (
    CheckpointManifest,
    ExperimentManifest,
    MetricPoint,
    ModelManifest,
    VersionManifest,
)
from modelbox.names import (
    CHECKPOINT_ALIASES,
    ModelName,
    Reference,
    parse_model,
    parse_namespace,
    parse_reference,
)
from modelbox.registry import MetricValue, Registry, metric_points

if TYPE_CHECKING:
    from modelbox.ingest import WatchThread
    from modelbox.namespaces import NamespaceInfo

__all__ = ["Checkpoint", "Experiment", "Model", "ModelBoxClient", "ModelVersion", "Namespace"]


class ModelBoxClient:
    """A handle on one registry: a path inside its Git repository, or its URL.

    A URL (``file://``, ``git://``, ``http(s)://``, ``ssh://``, ``user@host:path``) opens
    the registry read-only, through a cached mirror (:mod:`modelbox.urlread`): every read
    works, every write raises :class:`~modelbox.errors.ReadOnlyRegistryError`. ``branch``
    names the remote branch to read; ``refresh`` fetches now, ``offline`` never.
    """

    def __init__(self, path: str | Path = ".", *, create: bool = False,
                 branch: str | None = None, refresh: bool = False,
                 offline: bool = False) -> None:
        from modelbox.urlread import is_url, open_url

        self._registry: Registry
        if isinstance(path, str) and is_url(path):
            if create:
                raise InvalidValueError(
                    f"{path} is a URL; create a registry in a folder (modelbox init DIR) "
                    "and push it there"
                )
            self._registry = open_url(path, branch=branch, refresh=refresh, offline=offline)
        else:
            target = Path(path)
            self._registry = (Registry.init(target) if create and not _is_registry(target)
                              else Registry.open(target))
            if branch is not None:
                self._registry.target_branch = branch
        self._metrics = _MetricBuffer(self._registry)
        self._finalizer = weakref.finalize(self, self._metrics.flush_quietly)

    @property
    def registry(self) -> Registry:
        """The registry, with the metric points this client logged committed first."""
        self._metrics.flush()
        return self._registry

    def flush(self) -> None:
        """Commit the logged metric points now (also done on close, on reads, at exit, on
        SIGTERM, and every 50,000 points or 30 s); until then they are in the journal."""
        self._metrics.flush()

    def __enter__(self) -> ModelBoxClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Commit the logged metric points and release the registry."""
        self._metrics.close()
        self._finalizer.detach()
        self._registry.close()

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """Publish many writes at once: each is still one commit, all land or none do.

        >>> with client.batch():
        ...     for i in range(1000):
        ...         model.new_model_version(f"v{i}")
        """
        return self.registry.batch()

    # -- models --------------------------------------------------------------------------
    def new_model(
        self,
        name: str,
        owner: str = "",
        namespace: str = "",
        task: str = "",
        description: str = "",
        artifacts: Iterable[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Model:
        """Create a model (``name`` may carry its namespace: ``ai/vision/yolo``).

        ``artifacts`` are tracked (URIs) or uploaded (local paths) in the same batch.
        """
        ref = parse_model(name, namespace)
        with self.registry.batch():
            manifest = self.registry.create_model(
                ref, owner=owner, task=task, description=description, metadata=metadata
            )
            model = Model(self, manifest)
            model._attach(artifacts)
        return model

    def create_model(
        self,
        name: str,
        owner: str = "",
        namespace: str = "",
        task: str = "",
        description: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> Model:
        """Seed 002's spelling of :meth:`new_model`."""
        return self.new_model(name, owner, namespace, task, description, None, metadata)

    def new_collection(
        self,
        name: str,
        owner: str = "",
        namespace: str = "",
        description: str = "",
        metadata: dict[str, Any] | None = None,
        display_name: str = "",
    ) -> Model:
        """Create a collection: a model whose versions are links to versions of other models
        (``Model.link``), with its own unique tags (``docs/collections.md``);
        ``display_name`` is its name for people, spaces allowed."""
        from modelbox.collections import create_collection

        manifest = create_collection(
            self.registry, parse_model(name, namespace), owner=owner, description=description,
            metadata=metadata, display=display_name,
        )
        return Model(self, manifest)

    def model(self, name: str) -> Model:
        """The model ``NAMESPACE/NAME``; raise ModelNotFoundError."""
        return Model(self, self.registry.get_model(parse_model(name)))

    get_model = model

    def models(self, namespace: str | None = None, *, exact: bool = False) -> list[Model]:
        """The models (collections are listed by :meth:`collections`): all, or those in
        ``namespace`` and the namespaces below it, or with ``exact`` only those directly in
        it (seed 003's ``ListModels(namespace)``)."""
        if exact and namespace is None:
            raise InvalidValueError("exact=True needs a namespace")
        found = [m for m in self.registry.list_models(namespace) if not m.collection]
        if exact:
            wanted = parse_namespace(namespace or "")
            found = [m for m in found if m.namespace == wanted]
        return [Model(self, m) for m in found]

    # -- namespaces ----------------------------------------------------------------------
    def namespaces(self) -> list[Namespace]:
        """Every namespace (those holding a model or owners, and those above them)."""
        from modelbox.namespaces import list_namespaces

        return [Namespace(self, info) for info in list_namespaces(self.registry.snapshot())]

    def namespace(self, name: str) -> Namespace:
        """The namespace ``name`` (``ai/vision``); raise NamespaceNotFoundError if nothing
        lives in or below it and it has no owners."""
        from modelbox.namespaces import show

        return Namespace(self, show(self.registry.snapshot(), name))

    def set_namespace_owner(self, name: str, *owners: str) -> Namespace:
        """Give namespace ``name`` these owners (``@user``, ``@org/team``, emails), which it
        need not hold a model for; none removes them. One commit (:meth:`Namespace.set_owner`)."""
        from modelbox.namespaces import set_owners

        set_owners(self.registry, name, owners)
        return self.namespace(name)

    def collections(self, namespace: str | None = None) -> list[Model]:
        """The collections, or those in ``namespace`` and below it."""
        return [Model(self, m) for m in self.registry.list_models(namespace) if m.collection]

    # -- versions ------------------------------------------------------------------------
    def create_model_version(
        self,
        model_id: str,
        name: str | None = None,
        version: str = "",
        description: str = "",
        artifacts: Iterable[str] | None = None,
        metadata: dict[str, Any] | None = None,
        framework: MLFramework | str = MLFramework.UNKNOWN,
        unique_tags: Iterable[str] | None = None,
    ) -> ModelVersion:
        """Seed 002's spelling: the model's id first, then name, version, ... (no
        ``version``: the next ``vN``)."""
        return self.model(model_id).new_model_version(
            version, name, description, artifacts, metadata, unique_tags, framework
        )

    # -- experiments ---------------------------------------------------------------------
    def new_experiment(
        self,
        name: str,
        owner: str = "",
        namespace: str = "",
        framework: MLFramework | str = MLFramework.UNKNOWN,
        task: str = "",
        metadata: dict[str, Any] | None = None,
        external_id: str = "",
    ) -> Experiment:
        """Create an experiment (a training run), or return the one of that name."""
        from modelbox import lifecycle

        manifest = lifecycle.create_experiment(
            self.registry, parse_model(name, namespace), owner=owner, task=task,
            framework=framework, external_id=external_id, metadata=metadata,
        )
        return Experiment(self, manifest)

    create_experiment = new_experiment

    def experiment(self, name: str) -> Experiment:
        from modelbox import lifecycle

        return Experiment(self, lifecycle.get_experiment(self.registry, parse_model(name)))

    def experiments(self, namespace: str | None = None) -> list[Experiment]:
        from modelbox import lifecycle

        return [Experiment(self, e) for e in lifecycle.list_experiments(self.registry, namespace)]

    def model_version(self, ref: str) -> ModelVersion:
        """The version named ``MODEL@VERSION`` or ``MODEL:TAG``."""
        parsed = parse_reference(ref)
        version = self.registry.resolve(parsed)
        return ModelVersion(self, self.registry.get_version(parsed.model, version))

    def resolve(self, ref: str) -> str:
        """The version (or, for ``EXP:latest``/``EXP:best``/``EXP@C``, the checkpoint)
        ``ref`` names."""
        from modelbox import resolver

        self.flush()  # EXP:best ranks by metrics this process may still hold
        parsed = parse_reference(ref)
        found = resolver.resolve(self.registry.snapshot(), parsed, version_needed=True)
        assert found.version is not None  # version_needed
        return found.version

    def log(self, target: str | None = None) -> list[AuditEvent]:
        """Audit events, newest first, optionally about one model, version or tag."""
        return self.registry.log(str(parse_reference(target)) if target else None)


class _HasArtifacts:
    """upload_artifact / track_artifacts / artifacts / download_artifacts, shared by models
    and versions (seed 003: the same API on every object)."""

    _client: ModelBoxClient
    _manifest: Any  # each kind's manifest; every one has created_at and metadata

    @property
    def _target(self) -> Reference:
        raise NotImplementedError  # each subclass names itself

    def upload_artifact(
        self, files: Iterable[str | Path], file_type: str | None = None, *,
        replace: bool = False,
    ) -> list[Artifact]:
        """Upload local files or folders; objects the store has are not sent again. A path
        the target has already needs ``replace=True`` (ArtifactExistsError otherwise)."""
        from modelbox import artifacts
        from modelbox.filetypes import FileType

        kinds = {t.value for t in FileType}
        if file_type and file_type not in kinds:
            raise InvalidValueError(
                f"file_type {file_type!r} is none of {', '.join(sorted(kinds))}")
        kind = FileType(file_type) if file_type else None
        return artifacts.add(self._client.registry, self._target, [Path(f) for f in files],
                             file_type=kind, replace=replace)

    def upload_artifacts(
        self, files: Iterable[str | Path], file_type: str | None = None, *,
        replace: bool = False,
    ) -> list[Artifact]:
        """:meth:`upload_artifact` under the plural name seed 003's prose uses."""
        return self.upload_artifact(files, file_type, replace=replace)

    def update_metadata(self, key: str, value: Any) -> None:
        """Set metadata ``key`` to a JSON value (one audited commit); every kind of object
        has it (models, versions, experiments, checkpoints)."""
        self._client.registry.set_metadata(self._target, key, value)
        self._reload()

    def _reload(self) -> None:
        """Read the manifest again after a change."""
        registry = self._client.registry
        self._manifest = registry.target(registry.snapshot(), self._target)[1]

    @property
    def created_at(self) -> datetime:
        """When the object was created (its manifest's ``created_at``)."""
        created: datetime = self._manifest.created_at
        return created

    @property
    def updated_at(self) -> datetime:
        """When the object last changed on the branch: the newest audited change to it
        (metadata, artifacts, tags...), else its creation. Read from history on each call."""
        from modelbox.changed import updated_at

        return updated_at(self._client.registry, str(self._target), self.created_at)

    def track_artifacts(
        self, files: Iterable[str], names: Iterable[str] | None = None, *,
        replace: bool = False, check: bool = True,
    ) -> list[Artifact]:
        """Record external files by URI (s3://, gs://, https://...) without copying them.

        ``names`` gives each its artifact path (default: the URI's file name);
        ``check=False`` records a URI without contacting its store (size and checksum
        unknown); a path the target has already needs ``replace=True``.
        """
        from modelbox import artifacts

        return artifacts.track(self._client.registry, self._target, list(files),
                               names=None if names is None else list(names),
                               replace=replace, check=check)

    def remove_artifacts(self, names: Iterable[str]) -> None:
        """Remove artifacts by path, in one commit."""
        from modelbox import artifacts

        artifacts.remove(self._client.registry, self._target, list(names))

    def artifacts(self) -> list[Artifact]:
        from modelbox import artifacts

        return artifacts.list_artifacts(self._client.registry, self._target)

    def download_artifacts(self, dest: str | Path = ".") -> list[Path]:
        """Place every artifact under ``dest``, verified; return the files placed."""
        from modelbox import artifacts

        return artifacts.get(self._client.registry, self._target, Path(dest))

    def log_metrics(
        self, metrics: dict[str, MetricValue], step: int | None = None,
        wallclock: float | datetime | None = None,
    ) -> None:
        """Record metric values: numbers, strings or bytes; ``wallclock`` in seconds since
        the epoch or a ``datetime`` (naive means UTC), now when omitted.

        Cheap and durable: the points are in this process's journal (on disk, past a
        ``kill -9``) when the call returns, and committed in batches (see the client)."""
        self._client._metrics.add(
            self._target, metric_points(metrics, step=step, wallclock=wallclock)
        )

    def metrics(self) -> dict[str, list[dict[str, Any]]]:
        """Every series: key -> points (step, wallclock, value), by step when every point
        has one, else by wallclock (seed 003's order)."""
        return self._client.registry.metrics(self._target)

    def log_event(self, event: Event) -> None:
        """Record something an outside system did with this object (one commit)."""
        from modelbox import lifecycle

        lifecycle.log_events(self._client.registry, self._target, [event])

    def journal_events(self, events: list[Event]) -> None:
        """Record events with the next metrics commit: like :meth:`log_metrics`, they are
        in this process's journal (past a ``kill -9``) when the call returns, and land in
        the same batches (the training callbacks' epoch and checkpoint events)."""
        self._client._metrics.add_events(self._target, events)

    def events(self, since: datetime | None = None) -> list[Event]:
        from modelbox import lifecycle

        return lifecycle.list_events(self._client.registry, self._target, since)

    def _attach(self, artifacts: Iterable[str | Path] | None) -> None:
        """Seed semantics: URIs are tracked, local paths uploaded."""
        items = [str(a) for a in artifacts or []]
        uris = [a for a in items if "://" in a]
        local = [a for a in items if "://" not in a]
        if uris:
            self.track_artifacts(uris)
        if local:
            self.upload_artifact(local)


class _Named(_HasArtifacts):
    """What models and experiments share: a NAMESPACE/NAME, an owner, metadata."""

    _manifest: ModelManifest | ExperimentManifest

    def __init__(self, client: ModelBoxClient, manifest: Any) -> None:
        self._client, self._manifest = client, manifest

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r})"

    @property
    def _ref(self) -> ModelName:
        return ModelName(self._manifest.namespace, self._manifest.name)

    @property
    def _target(self) -> Reference:
        return Reference(self._ref)

    @property
    def id(self) -> str:
        return self._manifest.full_name

    name = property(lambda self: self._manifest.name)
    namespace = property(lambda self: self._manifest.namespace)
    owner = property(lambda self: self._manifest.owner)
    task = property(lambda self: self._manifest.task)

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self._manifest.metadata)


class Namespace:
    """A namespace (seeds 000-003): models organised together, and who owns them.

    A snapshot when fetched (:meth:`refresh` reads it again). ``owners`` are its own,
    ``effective_owners`` those that apply (its own, else the nearest enclosing namespace's,
    named by ``owners_from``); counts are of what lives directly in it."""

    def __init__(self, client: ModelBoxClient, info: NamespaceInfo) -> None:
        self._client, self._info = client, info

    def __repr__(self) -> str:
        return f"Namespace({self.name!r})"

    @property
    def name(self) -> str:
        return self._info.name

    id = name

    @property
    def owners(self) -> list[str]:
        return list(self._info.owners)

    @property
    def effective_owners(self) -> list[str]:
        return list(self._info.effective_owners)

    @property
    def owners_from(self) -> str | None:
        return self._info.owners_from

    @property
    def model_count(self) -> int:
        return len(self._info.models)

    @property
    def version_count(self) -> int:
        """Versions of the models directly in it, archived ones included."""
        return self._info.versions

    @property
    def namespaces(self) -> list[str]:
        """The namespaces directly below it."""
        return list(self._info.namespaces)

    def models(self) -> list[Model]:
        """The models directly in it (``ListModels(namespace)``)."""
        return self._client.models(self.name, exact=True)

    def collections(self) -> list[Model]:
        return [c for c in self._client.collections(self.name)
                if c.id.rpartition("/")[0] == self.name]

    def set_owner(self, *owners: str) -> Namespace:
        """Set its owners (``@user``, ``@org/team``, emails; CODEOWNERS' forms, checked):
        one ``namespace.owner`` commit in its manifest. Nested namespaces inherit them, a
        model's own owner overrides them (``modelbox codeowners``)."""
        from modelbox.namespaces import set_owners

        if not owners:
            raise InvalidValueError("set_owner needs at least one owner; clear_owner() "
                                    "removes them")
        set_owners(self._client.registry, self.name, owners)
        return self.refresh()

    def clear_owner(self) -> Namespace:
        """Remove its owners (and its manifest): it inherits its parent's again."""
        from modelbox.namespaces import set_owners

        set_owners(self._client.registry, self.name, ())
        return self.refresh()

    def refresh(self) -> Namespace:
        from modelbox.namespaces import NamespaceInfo, show

        try:
            self._info = show(self._client.registry.snapshot(), self.name)
        except NotFoundError:  # nothing lives in it any more and it has no owners
            self._info = NamespaceInfo(self.name, (), None, (), (), (), 0, (), False)
        return self


class Model(_Named):
    """A model: common metadata of every version trained for one task."""

    _manifest: ModelManifest

    description = property(lambda self: self._manifest.description)
    datasets = property(lambda self: list(self._manifest.datasets))
    display_name = property(lambda self: self._manifest.display_name or self._manifest.name)
    """A collection's name for people ("MNIST Grayscale 28x28"), else its name."""

    def refresh(self) -> Model:
        self._manifest = self._client.registry.get_model(self._ref)
        return self

    def new_model_version(
        self,
        version: str | None = None,
        name: str | None = None,
        description: str = "",
        artifacts: Iterable[str] | None = None,
        metadata: dict[str, Any] | None = None,
        unique_tags: Iterable[str] | None = None,
        framework: MLFramework | str = MLFramework.UNKNOWN,
    ) -> ModelVersion:
        """Create a version of this model; ``unique_tags`` must not be taken.

        With no ``version`` (None or ``""``) it is named ``vN``, one more than the highest
        ``vN`` the model has (``v0`` first), as W&B numbers versions. ``artifacts`` are
        tracked (URIs) or uploaded (local paths) in the same batch, before the tags are
        set: a protected tag (``production``) releases the version with its artifacts.
        """
        registry = self._client.registry
        tags, files = list(unique_tags or []), list(artifacts or [])
        with registry.batch():
            later = tags if files else []  # refused now if taken; set once the files are in
            taken = registry.tags(self._ref) if later else {}
            for tag in later:
                if tag in taken:
                    raise TagConflictError(self.id, tag, taken[tag])
            manifest = registry.create_version(
                self._ref, version or None, name=name, description=description, framework=framework,
                metadata=metadata, tags=[] if later else tags,
            )
            created = ModelVersion(self._client, manifest)
            created._attach(files)
            for tag in dict.fromkeys(later):
                registry.tag(self._ref, manifest.version, tag)
            if later:
                created.refresh()
        return created

    @property
    def is_collection(self) -> bool:
        return self._manifest.collection

    def link(
        self,
        source: str,
        version: str | None = None,
        unique_tags: Iterable[str] | None = None,
        description: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Link the version ``source`` names (``MODEL@VERSION`` or ``MODEL:TAG``, resolved
        now) into this collection as a new version: ``version``, else the next ``vN``."""
        from modelbox.collections import link

        manifest = link(
            self._client.registry, parse_reference(source), self._ref, version=version,
            tags=list(unique_tags or []), description=description, metadata=metadata,
        )
        return ModelVersion(self._client, manifest)

    def versions(self, *, archived: bool = False) -> list[ModelVersion]:
        return [
            ModelVersion(self._client, v)
            for v in self._client.registry.list_versions(self._ref, archived=archived)
        ]

    def version(self, version: str) -> ModelVersion:
        """The version named ``version`` (``m.version("prod")`` says: did you mean M:prod?)."""
        registry = self._client.registry
        resolved = registry.resolve(Reference(self._ref, version=version))
        return ModelVersion(self._client, registry.get_version(self._ref, resolved))

    def tags(self) -> dict[str, str]:
        return self._client.registry.tags(self._ref)

    def set_policy(
        self, labelling: list[dict[str, Any]] | None = None,
        retention: dict[str, Any] | None = None,
    ) -> None:
        """Replace the labelling rules (``{"tag", "metric", "dataset", "op", "value"}``) and
        retention (``{"keep_last": N, "keep_tagged": True}``); one reviewable commit."""
        from modelbox import policies

        document: dict[str, Any] = {"labelling": labelling or []}
        if retention is not None:
            document["retention"] = retention
        policies.set_policy(self._client.registry, self._ref, document)

    def unpin(self, tag: str) -> None:
        """Let the labelling policy move ``tag`` again (setting it by hand pinned it)."""
        from modelbox import policies

        policies.unpin(self._client.registry, self._ref, tag)

    def delete(self, *, force: bool = False) -> None:
        """Delete the model with every version (one commit; Git history keeps them).
        Tagged versions, or versions a collection links, need ``force``."""
        from modelbox.removal import delete_model

        delete_model(self._client.registry, self._ref, force=force,
                     collection=self._manifest.collection)

    def policy(self) -> dict[str, Any] | None:
        from modelbox import policies

        found = policies.get_policy(self._client.registry, self._ref)
        return found.model_dump(mode="json") if found else None



class ModelVersion(_HasArtifacts):
    """A trained model: one version of a :class:`Model`."""

    def __init__(self, client: ModelBoxClient, manifest: VersionManifest) -> None:
        self._client, self._manifest = client, manifest

    def __repr__(self) -> str:
        return f"ModelVersion({self.id!r})"

    @property
    def _model(self) -> ModelName:
        return parse_model(self._manifest.model)

    @property
    def _ref(self) -> Reference:
        return Reference(self._model, version=self._manifest.version)

    @property
    def _target(self) -> Reference:
        return self._ref

    @property
    def id(self) -> str:
        return f"{self._manifest.model}@{self._manifest.version}"

    model_id = property(lambda self: self._manifest.model)
    version = property(lambda self: self._manifest.version)
    name = property(lambda self: self._manifest.name)
    description = property(lambda self: self._manifest.description)
    framework = property(lambda self: self._manifest.framework)
    archived = property(lambda self: self._manifest.archived)
    link = property(lambda self: self._manifest.link)
    """``MODEL@VERSION`` this version of a collection links to, else None."""

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self._manifest.metadata)

    def lineage(self) -> list[dict[str, Any]]:
        """Where this version comes from: link -> version -> checkpoint -> experiment, as
        ``modelbox lineage --json`` prints it."""
        from modelbox.lineage import lineage

        return [node.to_json() for node in lineage(self._client.registry, self._ref)]

    def collections(self) -> list[str]:
        """Every link (``COLLECTION@VERSION``) that names this version, archived ones too;
        reads every collection's versions (a walk of the models, not a hot path)."""
        from modelbox.collections import links_to

        return links_to(self._client.registry.snapshot(), self.id)

    def unlink(self, *, force: bool = False) -> str:
        """Remove this link from its collection; return the source it named. A tagged link,
        or one another link names, needs ``force``."""
        from modelbox.collections import unlink

        return unlink(self._client.registry, self._ref, force=force)

    @property
    def metrics_summary(self) -> dict[str, float | str]:
        """The latest value of each numeric or text metric (logged points included)."""
        self.refresh()
        return dict(self._manifest.metrics)

    @property
    def unique_tags(self) -> list[str]:
        tags = self._client.registry.tags(self._model)
        return sorted(t for t, v in tags.items() if v == self.version)

    def refresh(self) -> ModelVersion:
        self._manifest = self._client.registry.get_version(self._model, self.version)
        return self


    def tag(self, tag: str) -> None:
        self._client.registry.tag(self._model, self.version, tag)
        self.refresh()  # a protected tag releases the version

    def release(self) -> dict[str, Any]:
        """Release this version: record the digest of its artifacts and freeze them
        (``modelbox version release``); return ``{at, by, digest}``."""
        release = self._client.registry.release_version(self._model, self.version)
        self.refresh()
        return release.model_dump(mode="json")

    @property
    def released(self) -> dict[str, Any] | None:
        """``{at, by, digest}`` once the version is released, else None."""
        found = self._manifest.released
        return None if found is None else found.model_dump(mode="json")

    def untag(self, tag: str) -> None:
        if tag not in self.unique_tags:
            raise InvalidValueError(f"{self.id} does not carry the tag {tag!r}")
        self._client.registry.untag(self._model, tag)

    def archive(self, *, force: bool = False) -> list[str]:
        """Archive this version; return the tags that removed. A tagged version needs
        ``force`` (InUseError lists its tags); links to it stay valid."""
        dropped = self._client.registry.archive_version(self._model, self.version, force=force)
        self.refresh()
        return dropped


def _is_registry(path: Path) -> bool:
    from modelbox.errors import RegistryNotFoundError

    try:
        Registry.open(path).close()
    except RegistryNotFoundError:
        return False
    return True


class Experiment(_Named):
    """A training run: hyperparameters, metric series, events and checkpoints."""

    _manifest: ExperimentManifest

    framework = property(lambda self: self._manifest.framework)
    external_id = property(lambda self: self._manifest.external_id)

    def new_checkpoint(
        self,
        epoch: int | str,
        metrics: dict[str, MetricValue] | None = None,
        files: Iterable[str | Path] | None = None,
        *,
        step: int | None = None,
        metadata: dict[str, Any] | None = None,
        checkpoint_id: str | None = None,
    ) -> Checkpoint:
        """Record a checkpoint (``epoch-N`` unless ``checkpoint_id``), with its files uploaded
        and its metrics logged. Calling it again for the same id returns the same checkpoint."""
        from modelbox import lifecycle

        number = epoch if isinstance(epoch, int) else None
        ident = checkpoint_id or (f"epoch-{epoch}" if number is not None else str(epoch))
        with self._client.registry.batch():
            manifest = lifecycle.create_checkpoint(
                self._client.registry, self._ref, ident, epoch=number, step=step,
                metadata=metadata,
            )
            checkpoint = Checkpoint(self._client, manifest)
            if files:
                checkpoint.upload_artifact(list(files))
            if metrics:
                checkpoint.log_metrics(metrics, step=step if step is not None else number)
        return checkpoint

    def delete(self, *, force: bool = False) -> None:
        """Delete the experiment with its checkpoints (one commit; Git history keeps them).
        A checkpoint promoted to a model version needs ``force``."""
        from modelbox.removal import delete_experiment

        delete_experiment(self._client.registry, self._ref, force=force)

    def watch(self, folder: str | Path, interval: float = 2.0, nice: int = 0) -> WatchThread:
        """Ingest each checkpoint a trainer writes into ``folder`` once it is complete,
        exactly once, from a background thread (``modelbox experiment watch``; layouts in
        docs/experiments.md). ``stop()`` it, or use it as a context manager: it takes one
        last look, so a checkpoint written just before is ingested. ``nice=10`` lets the
        trainer's threads have the CPU first (Linux; the command's default, not this one's).

        >>> with experiment.watch("out/"):
        ...     trainer.train()
        """
        from modelbox.ingest import WatchThread

        repo = self._client.registry.repo
        return WatchThread(repo.root or repo.git_dir, self._ref, Path(folder), interval, nice)

    def checkpoints(self) -> list[Checkpoint]:
        from modelbox import lifecycle

        return [Checkpoint(self._client, c)
                for c in lifecycle.list_checkpoints(self._client.registry, self._ref)]

    def checkpoint(self, name: str = "latest") -> Checkpoint:
        """A checkpoint by id, or ``latest`` (the newest, archived or not: what a restarted
        job resumes from) or ``best`` (by :meth:`set_best`'s metric), resolved like every
        reference; ``checkpoint().download_artifacts("ckpt/")`` fetches it."""
        from modelbox import resolver
        from modelbox.manifests import CheckpointManifest, parse

        registry = self._client.registry
        self._client.flush()
        snap = registry.snapshot()
        alias = name in CHECKPOINT_ALIASES
        ref = Reference(self._ref, tag=name) if alias else Reference(self._ref, version=name)
        found = resolver.resolve(snap, ref, version_needed=True)
        return Checkpoint(self._client, parse(CheckpointManifest, found.path,
                                              snap.read(found.path) or b""))

    def set_policy(
        self, *, promote_to: Model | str | None = None, when: Iterable[str] = (),
        tag: str | None = None, keep_last: int | None = None, keep_best: int | None = None,
        by: str | None = None, minimize: bool | None = None,
    ) -> dict[str, Any]:
        """Edit the experiment's policy (what ``policy set EXP`` does): promote each new
        checkpoint meeting every ``when`` rule (``"val_acc>=0.9"``) to ``promote_to``,
        tagged ``tag``; keep the newest ``keep_last`` / best ``keep_best`` ``by`` a
        metric. Returns the whole policy document."""
        from modelbox import autopromote

        target = promote_to.id if isinstance(promote_to, Model) else promote_to
        made = autopromote.edit_policy(
            self._client.registry, self._ref, promote_to=target, when=list(when), tag=tag,
            keep_last=keep_last, keep_best=keep_best, by=by, minimize=minimize)
        return made.model_dump(mode="json")

    def set_best(self, metric: str, direction: str = "min") -> None:
        """Rank checkpoints by ``metric`` for ``EXP:best`` (``min``: lower is better)."""
        from modelbox import lifecycle

        self._manifest = lifecycle.update_experiment(
            self._client.registry, self._ref, best_by=metric, best_direction=direction)


class Checkpoint(_HasArtifacts):
    """A saved state of an experiment; promote it to make a model version."""

    def __init__(self, client: ModelBoxClient, manifest: CheckpointManifest) -> None:
        self._client, self._manifest = client, manifest

    def __repr__(self) -> str:
        return f"Checkpoint({self.id!r})"

    @property
    def _target(self) -> Reference:
        return Reference(parse_model(self._manifest.experiment),
                         version=self._manifest.checkpoint)

    @property
    def id(self) -> str:
        return f"{self._manifest.experiment}@{self._manifest.checkpoint}"

    epoch = property(lambda self: self._manifest.epoch)
    step = property(lambda self: self._manifest.step)

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self._manifest.metadata)

    def promote(
        self, model: Model | str, version: str, unique_tags: Iterable[str] | None = None
    ) -> ModelVersion:
        """A version of ``model`` from this checkpoint: same objects, nothing re-uploaded."""
        from modelbox import lifecycle

        name = parse_model(model.id if isinstance(model, Model) else model)
        manifest = lifecycle.promote(
            self._client.registry, parse_model(self._manifest.experiment),
            self._manifest.checkpoint, name, version, tags=list(unique_tags or []),
        )
        return ModelVersion(self._client, manifest)


class _MetricBuffer:
    """Metric points logged and not committed yet. Each ``log_metrics`` call is written to
    this process's journal (:class:`modelbox.recovery.MetricsJournal`) before it returns,
    so a kill loses nothing; the journal becomes one commit per object on reads, on
    ``close()``/``flush()``, at exit, on SIGTERM, or when it holds ``MAX_POINTS`` or is
    ``MAX_AGE`` seconds old (checked when a point is logged)."""

    MAX_POINTS = 50_000
    MAX_AGE = 30.0

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._journal = recovery.MetricsJournal(registry)
        #: False: only flush()/close() (and MAX_POINTS) commit, never the logging thread
        #: by age: a training run's background thread commits (integrations/_run.py)
        self.commit_by_age = True

    @property
    def pending(self) -> int:
        return self._journal.count

    @property
    def journal(self) -> Path | None:
        """The journal file while it is open (tests and ``check`` look at it)."""
        return self._journal.path

    def add(self, ref: Reference, points: list[tuple[str, MetricPoint]]) -> None:
        from modelbox.urlread import UrlRegistry

        if isinstance(self._registry, UrlRegistry):  # no journal in a cached mirror
            raise ReadOnlyRegistryError(self._registry.mirror.shown)
        journal = self._journal
        journal.append(ref, points)
        _watch_sigterm(self)
        if journal.count >= self.MAX_POINTS or (
                self.commit_by_age and time.monotonic() - journal.since >= self.MAX_AGE):
            self.flush()

    def add_events(self, ref: Reference, events: list[Event]) -> None:
        """Journal ``events`` (validated now) like points: committed with them."""
        from modelbox.urlread import UrlRegistry

        if isinstance(self._registry, UrlRegistry):
            raise ReadOnlyRegistryError(self._registry.mirror.shown)
        self._journal.append_events(ref, [event.record() for event in events])
        _watch_sigterm(self)

    def flush(self) -> None:
        with self._journal.lock:
            self._journal.flush()

    def close(self) -> None:
        with self._journal.lock:
            try:
                self._journal.flush()
            finally:
                self._journal.close()

    def flush_quietly(self) -> None:
        """At interpreter exit: commit what is left, saying so if it cannot."""
        try:
            self.close()
        except ModelboxError as exc:
            print(f"modelbox: logged metrics were not committed ({exc}); they are kept in "
                  "the journal and the next modelbox write commits them", file=sys.stderr)

    def flush_on_signal(self, *, dying: bool) -> None:
        """From the SIGTERM handler (main thread, between two bytecodes): commit unless this
        thread or another is inside a journal write or a batch, which the signal may have
        interrupted. Then the journal keeps the points for the next write. ``dying``: the
        process ends next (default action), so an emptied journal is removed."""
        journal = self._journal
        if not journal.lock.acquire(blocking=False):
            return
        try:
            journal.flush()
            if dying and not journal.count:
                journal.close()
        except ModelboxError as exc:
            print(f"modelbox: logged metrics were not committed on SIGTERM ({exc}); the "
                  "next modelbox write commits them", file=sys.stderr)
        finally:
            journal.lock.release()


_BUFFERS: weakref.WeakSet[_MetricBuffer] = weakref.WeakSet()
_SIGTERM_INSTALLED = False
_PREVIOUS_SIGTERM: Any = None


def _watch_sigterm(buffer: _MetricBuffer) -> None:
    """At the first ``log_metrics``: commit the journals on SIGTERM (a preempted job), then
    do what the handler installed before did. Only the main thread can install a handler;
    from another thread the journal alone keeps the points (the next write commits them)."""
    global _SIGTERM_INSTALLED, _PREVIOUS_SIGTERM
    _BUFFERS.add(buffer)
    if _SIGTERM_INSTALLED or threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _on_sigterm)
    _PREVIOUS_SIGTERM, _SIGTERM_INSTALLED = previous, True


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    previous = _PREVIOUS_SIGTERM
    try:
        for buffer in list(_BUFFERS):
            buffer.flush_on_signal(dying=previous in (signal.SIG_DFL, None))
    finally:  # whatever the commit did (a full disk), the signal does what it did before
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:  # the default (or one not set from Python): die
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
