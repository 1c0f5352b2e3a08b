"""Experiment policies: auto-promotion of checkpoints and checkpoint retention.

An experiment's policy is a committed document beside it
(``experiments/<ns>/<name>/_policy.json``, the same ``policy`` kind as a model's, with its
``promotion`` and ``checkpoints`` fields). The registry calls :func:`after_checkpoint` for
every checkpoint a write changed (created, metrics logged, artifacts added), at the end of
that write's batch: its decisions are commits of the same batch, so they land with the
change or not at all. Whoever writes a checkpoint through the library (the CLI, the
watcher, the framework callbacks) gets them.

* **Promotion**: a checkpoint that is not archived, has artifacts and meets every rule of
  ``when`` (grammar and evaluator: :mod:`modelbox.rules`) becomes the next ``vN`` of the
  target model (:func:`modelbox.lifecycle.promote_in`: same objects, lineage kept),
  tagged if the policy says so (the tag moves from an older version). Exactly once: the
  decision is derived from the registry — a checkpoint whose ``promoted_to`` names a
  version of the target model, or that a version of it records as ``source_checkpoint``,
  is not promoted again; both are written by the one promotion commit.
* **Retention**: every checkpoint beyond the newest ``keep_last`` and the ``keep_best``
  best by a metric is archived, never the newest one (resume reads it).

Each decision is one commit whose audit trail names the policy (``Modelbox-Policy:``). A
policy that cannot be applied (a broken file, a target model that is gone, a namespace the
user does not own) is skipped with one warning line: it never blocks the write that
triggered it. ``docs/policies.md`` works an example through.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelbox import layout, limits
from modelbox.audit import Change, TagMove
from modelbox.errors import InvalidValueError, ManifestError, ModelboxError
from modelbox.lifecycle import promote_in
from modelbox.manifests import (
    CheckpointManifest,
    CheckpointRetention,
    MetricCondition,
    Policy,
    PromotionRule,
    parse,
)
from modelbox.names import ModelName, parse_model
from modelbox.refs import Snapshot
from modelbox.registry import Registry
from modelbox.rules import RuleSyntaxError, all_hold, parse_rule

__all__ = [
    "Decision",
    "after_checkpoint",
    "describe",
    "edit_policy",
    "get_policy",
    "policy_file",
    "read_policy",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    """One thing a policy did: ``promote`` (``target`` is ``MODEL@VERSION``), ``label``
    (the model's labelling policy moved a tag to that promoted version) or ``archive`` a
    checkpoint (``EXP@CKPT``); ``policy`` names the rules."""

    action: str
    checkpoint: str
    target: str | None
    policy: str

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "checkpoint": self.checkpoint, "target": self.target,
                "policy": self.policy}


def policy_file(experiment: ModelName) -> str:
    return f"{layout.experiment_dir(experiment)}/{layout.POLICY_FILE}"


def read_policy(snap: Snapshot, experiment: ModelName) -> Policy | None:
    path = policy_file(experiment)
    data = snap.read(path)
    return parse(Policy, path, data) if data is not None else None


def _require_experiment(snap: Snapshot, experiment: ModelName) -> None:
    if snap.read(layout.experiment_file(experiment)) is None:
        raise InvalidValueError(f"experiment {experiment} does not exist")


def get_policy(registry: Registry, experiment: ModelName) -> Policy | None:
    snap = registry.snapshot()
    _require_experiment(snap, experiment)
    return read_policy(snap, experiment)


# -- who may promote where -----------------------------------------------------------------
def _owners(snap: Snapshot, namespace: str) -> tuple[str, ...]:
    from modelbox.namespaces import read_owners

    parts = namespace.split("/")
    for depth in range(len(parts), 0, -1):
        owners = read_owners(snap, "/".join(parts[:depth]))
        if owners:
            return owners
    return ()


def check_target(registry: Registry, snap: Snapshot, experiment: ModelName,
                 model: ModelName) -> None:
    """Refuse a promotion target that is no model, is a collection, or lives in a
    namespace whose owners do not include the acting user (by email, or ``@`` + Git
    user name); a namespace without owners is open to all."""
    data = snap.read(layout.model_file(model))
    if data is None:
        raise InvalidValueError(
            f"the promotion target {model} of {experiment}'s policy is no model; create it "
            f"with `modelbox model create {model}`"
        )
    doc = limits.loads(data, "model")
    if isinstance(doc, dict) and doc.get("collection") is True:
        raise InvalidValueError(f"the promotion target {model} is a collection; promote into "
                                "a model and link the version into the collection")
    owners = _owners(snap, model.namespace)
    if not owners:
        return
    who = registry.repo.identity()
    name, _, email = who.rpartition(" <")
    mine = {email.rstrip(">").lower(), "@" + name.strip().lower()}
    if not mine & {o.lower() for o in owners}:
        raise InvalidValueError(
            f"{who} does not own the namespace {model.namespace} (owners: "
            f"{', '.join(owners)}), so {experiment}'s checkpoints cannot be promoted into "
            f"{model}; ask an owner, or promote into a namespace you own"
        )


# -- setting the policy ----------------------------------------------------------------------
def _condition(text: str) -> MetricCondition:
    try:
        rule = parse_rule(text)
    except RuleSyntaxError as exc:
        raise InvalidValueError(f"--when {text!r}: {exc}") from None
    return MetricCondition(metric=rule.metric, dataset=rule.dataset, op=rule.op,  # type: ignore[arg-type]  # parse_rule only yields the six operators
                           value=rule.value)


def edit_policy(
    registry: Registry, experiment: ModelName, *, promote_to: str | None = None,
    when: Sequence[str] = (), tag: str | None = None, clear_promotion: bool = False,
    keep_last: int | None = None, keep_best: int | None = None, by: str | None = None,
    minimize: bool | None = None, clear_retention: bool = False,
) -> Policy:
    """Change the named fields of the experiment's policy and keep the rest (one
    ``policy.set`` commit; nothing when nothing changes). ``promote_to`` with ``when``
    replaces the promotion rule; ``keep_best`` needs ``by``. Raises InvalidValueError for
    bad text, a target that is no model or not the user's (:func:`check_target`)."""
    conditions = [_condition(text) for text in when]
    if tag is not None:
        from modelbox.registry import _check_tag

        _check_tag(tag)
    with registry.batch():
        policy = _edit(registry, experiment, promote_to, conditions, tag, clear_promotion,
                       keep_last, keep_best, by, minimize, clear_retention)
        if policy.checkpoints is not None:  # retention applies at once; promotion to what
            registry.decisions += _retain(registry, experiment, policy.checkpoints)  # comes
    return policy


def _edit(
    registry: Registry, experiment: ModelName, promote_to: str | None,
    conditions: list[MetricCondition], tag: str | None, clear_promotion: bool,
    keep_last: int | None, keep_best: int | None, by: str | None, minimize: bool | None,
    clear_retention: bool,
) -> Policy:
    with registry.transaction() as txn:
        snap = txn.snapshot
        _require_experiment(snap, experiment)
        old = read_policy(snap, experiment) or Policy()
        promotion = None if clear_promotion else old.promotion
        if promote_to is not None or conditions or tag is not None:
            target = promote_to or (promotion.model if promotion else None)
            if target is None:
                raise InvalidValueError("--when and --tag need --promote-to MODEL")
            model = parse_model(target)
            check_target(registry, snap, experiment, model)
            if not conditions and promotion is None:
                raise InvalidValueError(
                    f"--promote-to {target} needs at least one --when 'METRIC OP VALUE' "
                    "(e.g. --when 'val_acc>=0.9'): a checkpoint is promoted when it meets "
                    "every rule")
            promotion = PromotionRule(
                model=str(model), when=conditions or (promotion.when if promotion else []),
                tag=tag if tag is not None else (promotion.tag if promotion else None))
        retention = None if clear_retention else old.checkpoints
        if any(v is not None for v in (keep_last, keep_best, by, minimize)):
            base = retention or CheckpointRetention()
            update: dict[str, Any] = {k: v for k, v in (
                ("keep_last", keep_last), ("keep_best", keep_best), ("by", by),
                ("minimize", minimize)) if v is not None}
            retention = base.model_copy(update=update)
            if retention.keep_best is not None and retention.by is None:
                raise InvalidValueError("--keep-best N needs --by METRIC (and --min or --max)")
            if retention.keep_best is None and retention.keep_last is None:
                raise InvalidValueError("checkpoint retention needs --keep-last N or "
                                        "--keep-best N --by METRIC")
        policy = Policy(promotion=promotion, checkpoints=retention)
        if policy != old:
            txn.put(policy_file(experiment), policy)
            txn.change = Change("policy.set", str(experiment), f"policy set {experiment}",
                                after=policy.model_dump_json())
    return policy


def clear_policy(registry: Registry, experiment: ModelName) -> None:
    with registry.transaction() as txn:
        if txn.snapshot.read(policy_file(experiment)) is None:
            raise InvalidValueError(f"{experiment} has no policy")
        txn.delete(policy_file(experiment))
        txn.change = Change("policy.clear", str(experiment), f"policy clear {experiment}")


def describe(policy: Policy) -> list[str]:
    """An experiment's policy as lines of text."""
    lines = []
    if policy.promotion:
        rule = policy.promotion
        tagged = f" tagged {rule.tag}" if rule.tag else ""
        lines.append(f"promote to {rule.model}{tagged} when {_rules_text(rule)}")
    else:
        lines.append("promotion: none")
    keep = policy.checkpoints
    if keep:
        parts = [f"the newest {keep.keep_last}" if keep.keep_last else "the newest"]
        if keep.keep_best:
            parts.append(f"the best {keep.keep_best} by {keep.by} "
                         f"({'lowest' if keep.minimize else 'highest'} first)")
        lines.append(f"checkpoint retention: keep {' and '.join(parts)}; archive the rest")
    else:
        lines.append("checkpoint retention: none")
    return lines


def _rules_text(rule: PromotionRule) -> str:
    return " and ".join(c.rule().describe() for c in rule.when)


# -- evaluation ------------------------------------------------------------------------------
def after_checkpoint(registry: Registry, experiment: ModelName, checkpoint: str,
                     ) -> list[Decision]:
    """Apply the experiment's policy after ``checkpoint`` changed; return what it did.

    Called by the registry at the end of every batch that changed a checkpoint (so
    callers never need to); calling it again changes nothing that was decided. A policy
    that cannot be applied is skipped with one warning line."""
    try:
        policy = read_policy(registry.snapshot(), experiment)
    except ManifestError as exc:
        logger.warning("modelbox: warning: %s; %s's policy is not applied", exc, experiment)
        return []
    if policy is None:
        return []
    decisions = []
    with registry.batch():
        if policy.promotion is not None:
            try:
                made = _promote(registry, experiment, checkpoint, policy.promotion)
            except ModelboxError as exc:
                logger.warning("modelbox: warning: %s@%s not promoted: %s", experiment,
                               checkpoint, exc)
                made = None
            if made is not None:
                decisions.append(made)
                labelled = _label(registry, made)
                if labelled is not None:
                    decisions.append(labelled)
        if policy.checkpoints is not None:
            try:
                decisions += _retain(registry, experiment, policy.checkpoints)
            except ModelboxError as exc:  # a broken checkpoint file: `check` reports it
                logger.warning("modelbox: warning: %s's checkpoint retention not applied: "
                               "%s", experiment, exc)
    return decisions


def _checkpoint(snap: Snapshot, experiment: ModelName, checkpoint: str,
                ) -> CheckpointManifest | None:
    path = layout.checkpoint_file(experiment, checkpoint)
    data = snap.read(path)
    return None if data is None else parse(CheckpointManifest, path, data)


def _already_promoted(snap: Snapshot, source: CheckpointManifest, model: ModelName) -> bool:
    if any(p.rpartition("@")[0] == str(model) for p in source.promoted_to):
        return True
    origin = f"{source.experiment}@{source.checkpoint}"
    for name, is_dir in snap.listdir(layout.versions_dir(model)):
        data = snap.read(layout.version_file(model, name)) if is_dir else None
        try:
            doc = limits.loads(data, "version") if data is not None else None
        except ValueError:
            continue
        if isinstance(doc, dict) and (doc.get("metadata") or {}).get(
                "source_checkpoint") == origin:
            return True
    return False


def _promote(registry: Registry, experiment: ModelName, checkpoint: str,
             rule: PromotionRule) -> Decision | None:
    model = parse_model(rule.model)
    rules = [c.rule() for c in rule.when]
    with registry.transaction() as txn:
        snap = txn.snapshot
        source = _checkpoint(snap, experiment, checkpoint)
        if source is None or source.archived or not all_hold(rules, source.metrics):
            return None
        folder = f"{layout.checkpoint_dir(experiment, checkpoint)}/{layout.ARTIFACTS_DIR}"
        if not snap.listdir(folder) or _already_promoted(snap, source, model):
            return None
        check_target(registry, snap, experiment, model)
        made = promote_in(registry, txn, experiment, checkpoint, model, None)
        assert txn.change is not None
        if rule.tag is not None:
            before = registry.tag_in(txn, model, made.version, rule.tag)
            txn.change.tag_moves.append(TagMove(f"{model}:{rule.tag}", before, made.version))
        text = f"promote to {rule.model}: {_rules_text(rule)}"
        txn.change.policy = text
    return Decision("promote", f"{experiment}@{checkpoint}", f"{model}@{made.version}", text)


def _label(registry: Registry, promoted: Decision) -> Decision | None:
    """The model's labelling policy (modelbox/policies.py) applied to the version a
    promotion made, as to a version whose metrics were logged: its own commit, in the
    same batch, when it moves a tag."""
    from modelbox.names import Reference
    from modelbox.policies import apply_labelling

    assert promoted.target is not None
    model_text, _, version = promoted.target.rpartition("@")
    model = parse_model(model_text)
    with registry.transaction() as txn:
        _, manifest, target = registry.target(txn.snapshot, Reference(model, version=version))
        txn.change = Change("tag.move", target, f"label {target} (labelling policy)")
        apply_labelling(registry, txn, model, version, dict(getattr(manifest, "metrics", {})),
                        archived=bool(getattr(manifest, "archived", False)))
        if not txn.change.tag_moves:
            return None
        moves = txn.change.tag_moves
        txn.change.subject = "tag " + ", ".join(
            f"{m.target} -> {m.after}" for m in moves) + " (labelling policy)"
        text = txn.change.policy or ""
    return Decision("label", promoted.checkpoint, promoted.target, text)


def _order(c: CheckpointManifest) -> tuple[datetime, str]:
    return (c.created_at, c.checkpoint)


def kept(checkpoints: list[CheckpointManifest], keep: CheckpointRetention) -> set[str]:
    """The checkpoints retention keeps: the newest always, the newest ``keep_last``, the
    best ``keep_best`` by ``by`` (those without a number for it rank last)."""
    ordered = sorted(checkpoints, key=_order)
    out = {ordered[-1].checkpoint} if ordered else set()
    if keep.keep_last:
        out |= {c.checkpoint for c in ordered[-keep.keep_last:]}
    if keep.keep_best and keep.by:
        sign = 1.0 if keep.minimize else -1.0

        def rank(c: CheckpointManifest) -> tuple[int, float, tuple[datetime, str]]:
            value = c.metrics.get(keep.by or "")
            if isinstance(value, bool) or not isinstance(value, int | float):
                return (1, 0.0, _order(c))
            return (0, sign * float(value), _order(c))

        out |= {c.checkpoint for c in sorted(ordered, key=rank)[: keep.keep_best]}
    return out


def _retain(registry: Registry, experiment: ModelName, keep: CheckpointRetention,
            ) -> list[Decision]:
    from modelbox.lifecycle import list_checkpoints

    live = [c for c in list_checkpoints(registry, experiment) if not c.archived]
    keeping = kept(live, keep)
    text = "checkpoint retention: keep " + " and ".join(
        part for part in (f"the newest {keep.keep_last}" if keep.keep_last else "",
                          f"the best {keep.keep_best} by {keep.by} "
                          f"({'min' if keep.minimize else 'max'})" if keep.keep_best else "")
        if part)
    out = []
    for c in live:
        if c.checkpoint in keeping:
            continue
        archive_checkpoint(registry, experiment, c.checkpoint, policy=text)
        out.append(Decision("archive", f"{experiment}@{c.checkpoint}", None, text))
    return out


def archive_checkpoint(registry: Registry, experiment: ModelName, checkpoint: str, *,
                       archived: bool = True, policy: str | None = None) -> bool:
    """Archive (or restore) a checkpoint: one commit; False when it already was."""
    with registry.transaction() as txn:
        source = _checkpoint(txn.snapshot, experiment, checkpoint)
        if source is None:
            raise InvalidValueError(f"checkpoint {experiment}@{checkpoint} does not exist")
        if source.archived == archived:
            return False
        txn.put(layout.checkpoint_file(experiment, checkpoint),
                source.model_copy(update={"archived": archived}))
        op = "checkpoint.archive" if archived else "checkpoint.restore"
        txn.change = Change(op, f"{experiment}@{checkpoint}",
                            f"{op.replace('.', ' ')} {experiment}@{checkpoint}", policy=policy)
    return True
