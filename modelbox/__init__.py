"""modelbox: a model registry that is a Git repository plus a checksum-addressed store.

Names are imported on first use so that ``import modelbox`` (and the CLI) starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelbox.lazy import attribute_loader

if TYPE_CHECKING:
    from modelbox.artifacts import Artifact
    from modelbox.audit import AuditEvent
    from modelbox.client import (
        Checkpoint,
        Experiment,
        Model,
        ModelBoxClient,
        ModelVersion,
        Namespace,
    )
    from modelbox.errors import ModelboxError
    from modelbox.filetypes import ArtifactMime, FileType
    from modelbox.frameworks import MLFramework
    from modelbox.lifecycle import Event

__all__ = [
    "Artifact",
    "ArtifactMime",
    "AuditEvent",
    "Checkpoint",
    "Event",
    "Experiment",
    "FileType",
    "MLFramework",
    "Model",
    "ModelBoxClient",
    "ModelVersion",
    "ModelboxError",
    "Namespace",
]
__version__ = "0.1.0"

_LAZY = {
    "Artifact": "modelbox.artifacts",
    "ArtifactMime": "modelbox.filetypes",
    "FileType": "modelbox.filetypes",
    "AuditEvent": "modelbox.audit",
    "Checkpoint": "modelbox.client",
    "Event": "modelbox.lifecycle",
    "Experiment": "modelbox.client",
    "Model": "modelbox.client",
    "ModelBoxClient": "modelbox.client",
    "ModelVersion": "modelbox.client",
    "MLFramework": "modelbox.frameworks",
    "ModelboxError": "modelbox.errors",
    "Namespace": "modelbox.client",
}


__getattr__ = attribute_loader(globals(), _LAZY)
