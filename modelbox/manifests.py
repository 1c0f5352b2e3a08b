"""The registry's JSON documents as pydantic models (the code's view of ``schemas/``).

Each model here has a JSON Schema twin in ``schemas/``; ``tests/test_schemas.py`` checks the
two accept and refuse the same documents. Documents are written canonically (see
:mod:`modelbox.canonical`) so that diffs stay minimal.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Annotated, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationError,
)

from modelbox import canonical
from modelbox.errors import ManifestError
from modelbox.frameworks import MLFramework

FORMAT = 1
# The naming rule of modelbox.names as one regular expression (Python and ECMA-262 alike).
_SEGMENT = (
    r"(?!\.)(?![^/]*\.\.)(?![^/]*\.lock(?:/|$))(?![^/]*\.(?:/|$))"
    r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
)
NAME_PATTERN = rf"^{_SEGMENT}$"
NAMESPACE_PATTERN = rf"^{_SEGMENT}(?:/{_SEGMENT})*$"
Segment = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]


def now() -> datetime:
    return datetime.now(timezone.utc)


class _Document(BaseModel):
    # strict: JSON types are taken as they are (no "1" -> 1, no true -> 1.0), like the schemas
    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, regex_engine="python-re"
    )

    def to_bytes(self) -> bytes:
        return canonical.encode(self.model_dump(mode="json"))


class RegistrySettings(_Document):
    """``.modelbox/registry.json``: settings every clone shares. Never holds a secret."""

    kind: Literal["registry"] = "registry"
    format: Literal[1] = 1
    branch: str = Field(default="main", min_length=1)
    store: str | None = None


class ModelManifest(_Document):
    """``models/<namespace>/<name>/_model.json``."""

    kind: Literal["model"] = "model"
    namespace: str = Field(pattern=NAMESPACE_PATTERN)
    name: str = Field(pattern=NAME_PATTERN)
    owner: str = ""
    task: str = ""
    description: str = ""
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    datasets: list[str] = Field(default_factory=list)
    created_at: AwareDatetime

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"


class VersionManifest(_Document):
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
    created_at: AwareDatetime


class TagMap(_Document):
    """``models/<namespace>/<name>/_tags.json``: the model's unique tags, tag -> version."""

    kind: Literal["tags"] = "tags"
    tags: dict[Segment, Segment] = Field(default_factory=dict)


class MetricPoint(_Document):
    step: int | None = None
    wallclock: float
    value: float | str


class MetricSeries(_Document):
    """``_metrics.json`` beside a model or version: key -> points in logging order."""

    kind: Literal["metrics"] = "metrics"
    series: dict[str, list[MetricPoint]] = Field(default_factory=dict)


D = TypeVar("D", bound=_Document)


def parse(cls: type[D], path: str, data: bytes) -> D:
    """Parse ``data`` read from ``path``; raise ManifestError naming the file and field."""
    try:
        json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(path, f"not valid JSON ({exc}); fix or restore the file") from None
    try:
        return cls.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(document)"
        raise ManifestError(
            path, f"{where}: {first['msg']}; fix the file or restore it with git"
        ) from None
