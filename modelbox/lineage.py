"""Lineage: where a version came from, link by link, down to the training run.

``lineage(registry, ref)`` walks ``MODEL@VERSION`` (or ``MODEL:TAG``) through its links
(collection -> source version, or straight to a checkpoint), then the checkpoint the source
was promoted from (version metadata ``source_checkpoint``, written by ``checkpoint
promote``), then that checkpoint's experiment. Each step is a :class:`Node`; a step
whose document is gone is marked ``missing`` and ends the walk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelbox import layout, limits
from modelbox.collections import follow, is_checkpoint
from modelbox.errors import ModelboxError
from modelbox.names import Reference, parse_model
from modelbox.registry import Registry

__all__ = ["Node", "lineage", "render"]


@dataclass(frozen=True)
class Node:
    """One step: ``kind`` is link, version, checkpoint or experiment."""

    kind: str
    name: str
    missing: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "missing": self.missing, **self.details}


def _doc(data: bytes | None) -> dict[str, Any] | None:
    try:
        doc = limits.loads(data, "") if data is not None else None
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def lineage(registry: Registry, ref: Reference) -> list[Node]:
    """The steps from ``ref`` (a version) to the experiment it was trained in."""
    from modelbox.resolver import resolve_version

    snap = registry.snapshot()
    start = resolve_version(snap, ref)
    nodes: list[Node] = []
    try:
        chain = follow(snap, ref.model, start)
    except ModelboxError as exc:  # dangling or looping: show how far it goes
        return [Node("link", f"{ref.model}@{start}", details={"problem": str(exc)})]
    for model, version in chain[:-1]:
        doc = _doc(snap.read(layout.version_file(model, version))) or {}
        nodes.append(Node("link", f"{model}@{version}",
                          details={"link": doc.get("link"), "description":
                                   doc.get("description", "")}))
    model, version = chain[-1]
    if is_checkpoint(snap, model, version):  # a link straight to a checkpoint
        checkpoint: object = f"{model}@{version}"
    else:
        doc = _doc(snap.read(layout.version_file(model, version))) or {}
        metadata = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
        nodes.append(Node("version", f"{model}@{version}",
                          details={"metrics": doc.get("metrics", {}),
                                   "archived": doc.get("archived", False)}))
        checkpoint = (metadata or {}).get("source_checkpoint")
    if not isinstance(checkpoint, str) or "@" not in checkpoint:
        return nodes
    experiment, _, name = checkpoint.rpartition("@")
    try:
        run = parse_model(experiment)
    except ModelboxError:
        return [*nodes, Node("checkpoint", checkpoint, missing=True)]
    ckpt = _doc(snap.read(layout.checkpoint_file(run, name)))
    nodes.append(Node("checkpoint", checkpoint, missing=ckpt is None, details={} if ckpt is None
                      else {"epoch": ckpt.get("epoch"), "metrics": ckpt.get("metrics", {})}))
    exp = _doc(snap.read(layout.experiment_file(run)))
    nodes.append(Node("experiment", str(run), missing=exp is None, details={} if exp is None
                      else {"owner": exp.get("owner", ""),
                            "external_id": exp.get("external_id", "")}))
    return nodes


def render(nodes: list[Node]) -> str:
    """The steps as an indented tree, one line each."""
    lines = []
    for depth, node in enumerate(nodes):
        prefix = "" if depth == 0 else "    " * (depth - 1) + "└── "
        extra = " (missing)" if node.missing else ""
        if "problem" in node.details:
            extra += f" ({node.details['problem']})"
        lines.append(f"{prefix}{node.name} [{node.kind}]{extra}")
    return "\n".join(lines)
