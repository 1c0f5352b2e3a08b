"""The registry's JSON documents as pydantic models (the code's view of ``schemas/``).

Each model here has a JSON Schema twin in ``schemas/``; ``tests/test_schemas.py`` checks the
two accept and refuse the same documents. Documents are written canonically (see
:mod:`modelbox.canonical`) so that diffs stay minimal.
"""

from __future__ import annotations

import base64
import builtins
import json
from datetime import datetime, timezone
from typing import Annotated, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StringConstraints,
    ValidationError,
)

from modelbox import canonical, limits
from modelbox.errors import ManifestError
from modelbox.filetypes import FileType
from modelbox.frameworks import MLFramework
from modelbox.owners import OWNER_PATTERN
from modelbox.rules import Rule

FORMAT = 1
# The naming rule of modelbox.names as one regular expression (Python and ECMA-262 alike).
_SEGMENT = (
    r"(?!\.)(?![^/]*\.\.)(?![^/]*\.lock(?:/|$))(?![^/]*\.(?:/|$))"
    r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
)
NAME_PATTERN = rf"^{_SEGMENT}$"
NAMESPACE_PATTERN = rf"^{_SEGMENT}(?:/{_SEGMENT})*$"
#: The registry branch (modelbox.names.check_branch): segments, and never ``HEAD``.
BRANCH_PATTERN = rf"^(?!HEAD$){_SEGMENT}(?:/{_SEGMENT})*$"
#: A link's source, ``NAMESPACE/NAME@VERSION`` (always the full name: ``default/x@v1``).
LINK_PATTERN = rf"^{_SEGMENT}(?:/{_SEGMENT})+@{_SEGMENT}$"
Segment = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]


def now() -> datetime:
    return datetime.now(timezone.utc)


class Document(BaseModel):
    # strict: JSON types are taken as they are (no "1" -> 1, no true -> 1.0), like the schemas
    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, regex_engine="python-re",
        # Build each validator on first use: a command touches two or three of the
        # dozen document kinds, and building them all cost ~0.1 s of start-up.
        defer_build=True,
    )

    def to_bytes(self) -> bytes:
        return canonical.encode(self.model_dump(mode="json"))


class RegistrySettings(Document):
    """``.modelbox/registry.json``: settings every clone shares. Never holds a secret."""

    kind: Literal["registry"] = "registry"
    format: Literal[1] = 1
    branch: str = Field(default="main", min_length=1, pattern=BRANCH_PATTERN)
    store: str | None = None
    # The tags that release what they name (docs/releases.md); absent: ["production"].
    protected_tags: list[Segment] | None = Field(default=None, max_length=64)
    # GTO-format Git tags for every registration and tag move (docs/gto.md); absent: off.
    git_tags: StrictBool = False

    def to_bytes(self) -> bytes:
        # Written only when set, so an older registry's settings stay byte for byte as they were.
        exclude = {k for k, unset in (("protected_tags", self.protected_tags is None),
                                      ("git_tags", not self.git_tags)) if unset}
        return canonical.encode(self.model_dump(mode="json", exclude=exclude or None))


#: A display name: printable text, spaces allowed, no control characters, at most 200.
DISPLAY_NAME_MAX = 200
DISPLAY_NAME_PATTERN = r"^[^\x00-\x1f\x7f]*$"


class ModelManifest(Document):
    """``models/<namespace>/<name>/_model.json``."""

    kind: Literal["model"] = "model"
    namespace: str = Field(pattern=NAMESPACE_PATTERN)
    name: str = Field(pattern=NAME_PATTERN)
    owner: str = ""
    task: str = ""
    description: str = ""
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    datasets: list[str] = Field(default_factory=list)
    collection: bool = False  # its versions are links to versions of other models
    # A collection's name for people ("MNIST Grayscale 28x28") beside its ref-safe name.
    display_name: str = Field(default="", max_length=DISPLAY_NAME_MAX,
                              pattern=DISPLAY_NAME_PATTERN)
    created_at: AwareDatetime

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"

    def to_bytes(self) -> bytes:
        # Written only when set, so a plain model's manifest stays byte for byte as it was.
        exclude = {k for k in ("collection", "display_name") if not getattr(self, k)}
        return canonical.encode(self.model_dump(mode="json", exclude=exclude or None))


class NamespaceManifest(Document):
    """``models/<namespace...>/_namespace.json``: a namespace's owners. Optional: a namespace
    without one exists implicitly, as soon as a model lives in it (SPEC)."""

    kind: Literal["namespace"] = "namespace"
    namespace: str = Field(pattern=NAMESPACE_PATTERN)
    owners: list[Annotated[str, Field(pattern=OWNER_PATTERN, max_length=320)]] = Field(
        default_factory=list, max_length=64)


DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"


class Release(Document):
    """A version's release: when, what released it, and the digest of its artifact set."""

    at: AwareDatetime
    by: str = Field(min_length=1, max_length=300)  # "version release", "tag production", ...
    digest: str = Field(pattern=DIGEST_PATTERN)


class VersionManifest(Document):
    """``models/<namespace>/<name>/_versions/<version>/_version.json``."""

    kind: Literal["version"] = "version"
    model: str = Field(pattern=NAMESPACE_PATTERN)
    version: str = Field(pattern=NAME_PATTERN)
    name: str = ""
    description: str = ""
    framework: MLFramework = MLFramework.UNKNOWN
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    metrics: dict[str, float | str] = Field(default_factory=dict)
    archived: bool = False
    link: str | None = Field(default=None, pattern=LINK_PATTERN)  # a collection's link
    # A link: the digest of the artifact set it named when it was made.
    digest: str | None = Field(default=None, pattern=DIGEST_PATTERN)
    released: Release | None = None  # set once, by `version release`, a link or a tag
    created_at: AwareDatetime

    def to_bytes(self) -> bytes:
        # Written only when set, so a plain version's manifest stays byte for byte as it was.
        exclude = {k for k in ("link", "digest", "released") if getattr(self, k) is None}
        return canonical.encode(self.model_dump(mode="json", exclude=exclude or None))


class TagMap(Document):
    """``models/<namespace>/<name>/_tags.json``: the model's unique tags, tag -> version."""

    kind: Literal["tags"] = "tags"
    tags: dict[Segment, Segment] = Field(default_factory=dict)


#: Standard base64 (RFC 4648 section 4, padded), as a JSON Schema pattern too.
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


class BytesValue(Document):
    """A metric value that is raw bytes (seed 003: "float, string or bytes"), as
    ``{"bytes": "<base64>"}`` so that JSON holds it faithfully."""

    bytes: Annotated[str, StringConstraints(pattern=BASE64_PATTERN)]

    @classmethod
    def of(cls, data: builtins.bytes) -> BytesValue:
        return cls(bytes=base64.b64encode(data).decode("ascii"))

    def decode(self) -> builtins.bytes:
        return base64.b64decode(self.bytes)


class MetricPoint(Document):
    step: int | None = None
    wallclock: float
    value: float | str | BytesValue


class MetricSeries(Document):
    """``_metrics.json`` beside a model or version: key -> points, by step when all have
    one, else by wallclock (:mod:`modelbox.metric_order`)."""

    kind: Literal["metrics"] = "metrics"
    series: dict[str, list[MetricPoint]] = Field(default_factory=dict)


class ExperimentManifest(Document):
    """``experiments/<namespace>/<name>/_experiment.json``: one training run."""

    kind: Literal["experiment"] = "experiment"
    namespace: str = Field(pattern=NAMESPACE_PATTERN)
    name: str = Field(pattern=NAME_PATTERN)
    owner: str = ""
    task: str = ""
    framework: MLFramework = MLFramework.UNKNOWN
    external_id: str = ""
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    created_at: AwareDatetime
    #: the metric ``EXP:best`` ranks checkpoints by, and whether lower (``min``) is better
    best_by: str | None = Field(default=None, min_length=1, max_length=256)
    best_direction: Literal["min", "max"] | None = None

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"


class CheckpointManifest(Document):
    """``experiments/<ns>/<name>/_checkpoints/<id>/_checkpoint.json``: a saved state."""

    kind: Literal["checkpoint"] = "checkpoint"
    experiment: str = Field(pattern=NAMESPACE_PATTERN)
    checkpoint: str = Field(pattern=NAME_PATTERN)
    epoch: int | None = Field(default=None, ge=0)
    step: int | None = Field(default=None, ge=0)
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    metrics: dict[str, float | str] = Field(default_factory=dict)
    promoted_to: list[str] = Field(default_factory=list)
    created_at: AwareDatetime
    #: hidden from listings and retention, kept for ``EXP:latest``; gc --no-history frees it
    archived: bool = False


class EventRecord(Document):
    """Something an outside system did with a model, version, experiment or checkpoint."""

    name: str = Field(min_length=1, max_length=256)
    source: str = ""
    wallclock: float
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class EventLog(Document):
    """``_events.json`` beside any object: its events in logging order."""

    kind: Literal["events"] = "events"
    events: list[EventRecord] = Field(default_factory=list)


class MetricCondition(Document):
    """One ``METRIC[/DATASET] OP VALUE`` rule (:mod:`modelbox.rules`) on its own."""

    metric: str = Field(min_length=1)
    dataset: str | None = None
    op: Literal[">=", ">", "<=", "<", "==", "!="] = ">="
    value: float

    def rule(self) -> Rule:
        return Rule(metric=self.metric, op=self.op, value=self.value, dataset=self.dataset)


class LabellingRule(MetricCondition):
    """Give ``tag`` to the version whose ``metric`` (on ``dataset``) satisfies ``op value``.

    Several rules for one tag must all hold; the grammar and evaluation are
    :mod:`modelbox.rules` (documented in ``docs/policies.md``)."""

    tag: str = Field(pattern=NAME_PATTERN)

    @property
    def key(self) -> str:
        """The metric key the rule reads: ``acc``, or ``acc/coco-2017`` with a dataset."""
        return self.rule().key

    def describe(self) -> str:
        return f"{self.tag}: {self.rule().describe()}"


class RetentionRule(Document):
    """Keep the newest ``keep_last`` versions (and tagged and linked ones unless told not
    to); ``gc`` archives the rest."""

    keep_last: int = Field(ge=1)
    keep_tagged: bool = True
    keep_linked: bool = True


class PromotionRule(Document):
    """An experiment's checkpoint meeting every rule of ``when`` becomes a new version of
    ``model`` (tagged ``tag`` if given): :mod:`modelbox.autopromote`."""

    model: str = Field(pattern=NAMESPACE_PATTERN)
    when: list[MetricCondition] = Field(min_length=1)
    tag: str | None = Field(default=None, pattern=NAME_PATTERN)


class CheckpointRetention(Document):
    """Keep an experiment's newest ``keep_last`` checkpoints and its ``keep_best`` best by
    ``by`` (lower is better when ``minimize``); the newest is always kept."""

    keep_last: int | None = Field(default=None, ge=1)
    keep_best: int | None = Field(default=None, ge=1)
    by: str | None = Field(default=None, min_length=1)
    minimize: bool = True


class Policy(Document):
    """``models/<namespace>/<name>/_policy.json``: labelling and retention for a model;
    ``experiments/<namespace>/<name>/_policy.json``: promotion and checkpoint retention
    for an experiment (the fields of the other kind stay empty).

    ``pinned`` lists the tags a person set by hand (``modelbox tag``): labelling leaves
    them alone until ``modelbox policy unpin`` removes them from the list."""

    kind: Literal["policy"] = "policy"
    labelling: list[LabellingRule] = Field(default_factory=list)
    retention: RetentionRule | None = None
    pinned: list[Annotated[str, Field(pattern=NAME_PATTERN)]] = Field(default_factory=list)
    promotion: PromotionRule | None = None
    checkpoints: CheckpointRetention | None = None


SHA256_PATTERN = r"^[0-9a-f]{64}$"
# Relative paths of safe segments: no empty, '.' or '..' segment, no backslash or control
# character. An artifact's own path (which names a pointer file in Git) has no hidden
# segment either; a file inside a directory artifact (stored only in the store) may.
ENTRY_PATH_PATTERN = r"^(?!.*(?:^|/)\.\.?(?:/|$))(?!.*//)[^/\\\x00-\x1f][^\\\x00-\x1f]*(?<!/)$"
ENTRY_PATH_MAX = 4096
ARTIFACT_PATH_PATTERN = r"^(?!.*(?:^|/)\.)(?!.*//)[^/\\\x00-\x1f][^\\\x00-\x1f]*(?<!/)$"


class ArtifactPointer(Document):
    """``.../_artifacts/<path>.json``: one artifact of a model or version.

    A stored artifact names its object by ``sha256`` (for a directory, the object is a
    :class:`DirectoryManifest`); a tracked one stays at ``uri`` with what can be verified.
    """

    kind: Literal["artifact"] = "artifact"
    path: str = Field(pattern=ARTIFACT_PATH_PATTERN, max_length=1024)
    file_type: FileType = FileType.OTHER
    mime_type: str = "application/octet-stream"
    size: int = Field(ge=0)
    sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)
    directory: bool = False
    files: int | None = Field(default=None, ge=0)
    uri: str | None = None
    etag: str | None = None
    # False: tracked with --no-check, so ``size`` (0) and ``etag`` are unknown, not recorded.
    verified: bool = True
    created_at: AwareDatetime

    def to_bytes(self) -> bytes:
        # Written only when false, so a checked pointer stays byte for byte as it was.
        return canonical.encode(
            self.model_dump(mode="json", exclude=None if not self.verified else {"verified"})
        )


class DirectoryEntry(Document):
    path: str = Field(pattern=ENTRY_PATH_PATTERN, max_length=ENTRY_PATH_MAX)
    sha256: str = Field(pattern=SHA256_PATTERN)
    size: int = Field(ge=0)


class PackEntry(Document):
    """Small files of a directory artifact stored together as one object (docs/store.md).

    The object ``sha256`` is the concatenation of ``files``' contents in this order, with
    nothing between them: a file's offset is the sum of the sizes before it, and the pack's
    size the sum of them all.
    """

    sha256: str = Field(pattern=SHA256_PATTERN)
    files: list[DirectoryEntry] = Field(min_length=1)

    @property
    def size(self) -> int:
        """The pack object's size: its files' sizes added up."""
        return sum(entry.size for entry in self.files)


class DirectoryManifest(Document):
    """A directory artifact's listing, stored as an object in the store (not in Git).

    ``files`` are stored as objects of their own; ``packs`` hold the small files, several
    to an object. A listing without packs is written without the key, as before packs.
    """

    kind: Literal["directory"] = "directory"
    files: list[DirectoryEntry]
    packs: list[PackEntry] = Field(default_factory=list)

    def to_bytes(self) -> bytes:
        document = self.model_dump(mode="json")
        if not self.packs:
            del document["packs"]
        return canonical.encode(document)

    def objects(self) -> dict[str, int]:
        """sha256 -> size of every object the listing needs: loose files and packs."""
        out = {entry.sha256: entry.size for entry in self.files}
        out.update((pack.sha256, pack.size) for pack in self.packs)
        return out


D = TypeVar("D", bound=Document)


def parse(cls: type[D], path: str, data: bytes) -> D:
    """Parse ``data`` read from ``path``; raise ManifestError naming the file and field."""
    kind = cls.model_fields["kind"].default if "kind" in cls.model_fields else ""
    try:
        limits.loads(data, str(kind))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(path, f"not valid JSON ({exc}); fix or restore the file") from None
    except limits.LimitError as exc:
        raise ManifestError(path, f"(document): {exc}; fix or restore the file") from None
    try:
        return cls.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(document)"
        raise ManifestError(
            path, f"{where}: {first['msg']}; fix the file or restore it with git"
        ) from None
