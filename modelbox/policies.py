"""Policies on a model: labelling (tags earned by metrics) and retention (what gc archives).

A policy is a committed document beside the model (``_policy.json``), so changing one is a
reviewable commit like any other. Labelling rules are evaluated whenever metrics are
logged on a version: when a version's summary satisfies a rule, the rule's tag moves to it
in the same commit, and the commit names the rule (``Modelbox-Policy:``). The newest
qualifying version wins. Retention is applied by ``modelbox gc``.
"""

from __future__ import annotations

from typing import Any

from modelbox import layout
from modelbox.audit import TagMove
from modelbox.errors import InvalidValueError, ManifestError
from modelbox.manifests import Policy, parse
from modelbox.names import ModelName, Reference
from modelbox.refs import Snapshot
from modelbox.registry import Registry, Transaction


def read_policy(snap: Snapshot, model: ModelName) -> Policy | None:
    path = layout.policy_file(model)
    data = snap.read(path)
    return parse(Policy, path, data) if data is not None else None


def get_policy(registry: Registry, model: ModelName) -> Policy | None:
    snap = registry.snapshot()
    registry.target(snap, Reference(model))  # the model must exist
    return read_policy(snap, model)


def set_policy(registry: Registry, model: ModelName, document: dict[str, Any]) -> Policy:
    """Replace the model's policy; refuse unknown fields and metrics no version has."""
    from pydantic import ValidationError

    from modelbox.audit import Change

    try:
        policy = Policy.model_validate({"kind": "policy", **document}, strict=False)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(policy)"
        raise InvalidValueError(f"invalid policy for {model}: {where}: {first['msg']}") from None
    with registry.transaction() as txn:
        registry.target(txn.snapshot, Reference(model))
        versions = registry.list_versions(model, archived=True)
        known = {key for v in versions for key in v.metrics}
        for rule in policy.labelling:
            if versions and rule.key not in known:
                raise InvalidValueError(
                    f"labelling rule {rule.describe()!r}: no version of {model} has the metric "
                    f"{rule.key!r} (known: {', '.join(sorted(known)) or 'none'}); check the name"
                )
        txn.put(layout.policy_file(model), policy)
        txn.change = Change("policy.set", str(model), f"policy set {model}",
                            after=policy.model_dump_json())
    return policy


def clear_policy(registry: Registry, model: ModelName) -> None:
    from modelbox.audit import Change

    with registry.transaction() as txn:
        if txn.snapshot.read(layout.policy_file(model)) is None:
            raise InvalidValueError(f"{model} has no policy")
        txn.delete(layout.policy_file(model))
        txn.change = Change("policy.clear", str(model), f"policy clear {model}")


def apply_labelling(
    registry: Registry, txn: Transaction, model: ModelName, version: str,
    summary: dict[str, float | str], archived: bool,
) -> None:
    """Move the tags whose rules ``version``'s new summary satisfies (same transaction)."""
    try:
        policy = read_policy(txn.snapshot, model)
    except ManifestError:
        return  # a broken policy file must not block logging; `modelbox check` reports it
    if policy is None or archived or txn.change is None:
        return
    tags = registry.tags_in(txn.snapshot, model)
    moved = []
    for rule in policy.labelling:
        if rule.holds(summary.get(rule.key)) and tags.get(rule.tag) != version:
            txn.change.tag_moves.append(TagMove(f"{model}:{rule.tag}", tags.get(rule.tag),
                                                version))
            tags[rule.tag] = version
            moved.append(rule.describe())
    if moved:
        registry.put_tags(txn, model, tags)
        txn.change.policy = "; ".join(moved)
