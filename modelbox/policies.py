"""Policies on a model: labelling (tags earned by metrics) and retention (what gc archives).

A policy is a committed document beside the model (``_policy.json``), so changing one is a
reviewable commit like any other. Labelling rules (grammar: :mod:`modelbox.rules`) are
evaluated whenever metrics are logged on a version, and any move they make is in that same
commit, which names the rules (``Modelbox-Policy:``). For each tag:

* every rule for the tag must hold (AND);
* the version holding the tag keeps it while it is not archived and still satisfies every
  rule; only a *newer* qualifying version (created later) takes it from it;
* a holder that is archived or fails the rules gives the tag to the newest qualifying
  version, whatever its age; with no qualifying version the tag stays (a policy never
  removes a tag);
* a tag set or removed by hand (``modelbox tag``/``untag``, a rollback) is *pinned*:
  labelling leaves it alone until ``modelbox policy unpin`` clears the pin.

Retention is applied by ``modelbox gc`` (:mod:`modelbox.gc`). ``docs/policies.md`` works
an example through.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel, ValidationError

from modelbox import isotime, layout, limits
from modelbox.audit import Change, TagMove
from modelbox.errors import InvalidValueError, ManifestError
from modelbox.manifests import LabellingRule, Policy, RetentionRule, parse
from modelbox.names import RESERVED_TAGS, ModelName, Reference
from modelbox.refs import Snapshot
from modelbox.registry import Registry, Transaction
from modelbox.rules import Rule, RuleSyntaxError, all_hold, parse_rule

_Doc = TypeVar("_Doc", bound=BaseModel)


def read_policy(snap: Snapshot, model: ModelName) -> Policy | None:
    path = layout.policy_file(model)
    data = snap.read(path)
    return parse(Policy, path, data) if data is not None else None


def get_policy(registry: Registry, model: ModelName) -> Policy | None:
    snap = registry.snapshot()
    registry.target(snap, Reference(model))  # the model must exist
    return read_policy(snap, model)


def parse_label(text: str) -> LabellingRule:
    """``TAG:METRIC[/DATASET] OP VALUE`` (the ``--label`` option) as a labelling rule."""
    tag, sep, rule_text = text.partition(":")
    if not sep or not tag.strip():
        raise InvalidValueError(
            f"--label wants TAG:METRIC[/DATASET] OP VALUE (e.g. production:acc>=0.9), "
            f"got {text!r}"
        )
    try:
        rule = parse_rule(rule_text)
    except RuleSyntaxError as exc:
        raise InvalidValueError(f"--label {text!r}: {exc}") from None
    return _validated({"tag": tag.strip(), "metric": rule.metric, "dataset": rule.dataset,
                       "op": rule.op, "value": rule.value}, LabellingRule, "--label")


def _validated(document: dict[str, Any], kind: type[_Doc], where: str) -> _Doc:
    try:
        return kind.model_validate(document, strict=False)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(policy)"
        raise InvalidValueError(f"invalid {where}: {field}: {first['msg']}") from None


def set_policy(registry: Registry, model: ModelName, document: dict[str, Any]) -> Policy:
    """Replace the model's policy with ``document`` (pins kept unless it names them);
    refuse unknown fields and metrics no version has."""
    policy = _validated({"kind": "policy", **document}, Policy, f"policy for {model}")
    keep_pins = "pinned" not in document
    with registry.transaction() as txn:
        registry.target(txn.snapshot, Reference(model))
        if keep_pins:
            old = read_policy(txn.snapshot, model)
            policy = policy.model_copy(update={"pinned": old.pinned if old else []})
        _commit(registry, txn, model, policy)
    return policy


def edit_policy(
    registry: Registry, model: ModelName, *, labels: Sequence[str] = (),
    clear_labels: Sequence[str] = (),
    keep_last: int | None = None, clear_keep_last: bool = False,
    keep_tagged: bool | None = None, keep_linked: bool | None = None,
) -> Policy:
    """Change the named fields of the model's policy and keep the rest (one commit).

    ``clear_labels`` drops every rule of those tags before ``labels`` (``TAG:RULE`` text)
    are added, so both together replace one tag's rules. ``clear_keep_last`` removes the
    retention rule. Raises InvalidValueError for bad text and for a retention option with
    no ``keep_last`` to attach to."""
    added = [parse_label(text) for text in labels]
    with registry.transaction() as txn:
        registry.target(txn.snapshot, Reference(model))
        old = read_policy(txn.snapshot, model) or Policy()
        known_tags = {rule.tag for rule in old.labelling}
        for tag in clear_labels:
            if tag not in known_tags:
                raise InvalidValueError(
                    f"{model}'s policy has no labelling rule for {tag!r} (labelled: "
                    f"{', '.join(sorted(known_tags)) or 'none'})"
                )
        rules = [r for r in old.labelling if r.tag not in clear_labels]
        rules += [r for r in added if r not in rules]
        retention = old.retention
        if clear_keep_last:
            retention = None
        if keep_last is not None:
            retention = (retention or RetentionRule(keep_last=keep_last)).model_copy(
                update={"keep_last": keep_last})
        for name, value in (("keep_tagged", keep_tagged), ("keep_linked", keep_linked)):
            if value is None:
                continue
            if retention is None:
                raise InvalidValueError(
                    f"{model} has no retention rule to set {name} on; add one with "
                    "--keep-last N"
                )
            retention = retention.model_copy(update={name: value})
        policy = _validated({**old.model_dump(mode="json"), "labelling":
                             [r.model_dump(mode="json") for r in rules],
                             "retention": retention.model_dump(mode="json") if retention
                             else None}, Policy, f"policy for {model}")
        if policy != old:  # (no policy reads as the empty one: nothing to write either)
            _commit(registry, txn, model, policy)
    return policy


def _commit(registry: Registry, txn: Transaction, model: ModelName, policy: Policy) -> None:
    if policy.promotion is not None or policy.checkpoints is not None:
        raise InvalidValueError(
            f"{model} is a model: promotion and checkpoint retention are for an experiment's "
            "policy (`modelbox policy set EXPERIMENT --promote-to MODEL --when RULE`)")
    versions = registry.list_versions(model, archived=True)
    known = {key for v in versions for key in v.metrics}
    for rule in policy.labelling:
        if rule.tag in RESERVED_TAGS:
            raise InvalidValueError(f"labelling rule {rule.describe()!r}: the tag "
                                    f"{rule.tag!r} is computed by modelbox; choose another")
        if versions and rule.key not in known:
            raise InvalidValueError(
                f"labelling rule {rule.describe()!r}: no version of {model} has the metric "
                f"{rule.key!r} (known: {', '.join(sorted(known)) or 'none'}); check the name"
            )
    txn.put(layout.policy_file(model), policy)
    txn.change = Change("policy.set", str(model), f"policy set {model}",
                        after=policy.model_dump_json())


def clear_policy(registry: Registry, model: ModelName) -> None:
    with registry.transaction() as txn:
        if txn.snapshot.read(layout.policy_file(model)) is None:
            raise InvalidValueError(f"{model} has no policy")
        txn.delete(layout.policy_file(model))
        txn.change = Change("policy.clear", str(model), f"policy clear {model}")


def describe(policy: Policy) -> list[str]:
    """The whole policy as lines of text (``policy show`` and ``policy set``)."""
    lines = []
    for tag, rules in _rules_by_tag(policy).items():
        pinned = " (pinned: labelling leaves it alone)" if tag in policy.pinned else ""
        lines.append(f"label {tag}: {' and '.join(r.describe() for r in rules)}{pinned}")
    for tag in policy.pinned:
        if tag not in _rules_by_tag(policy):
            lines.append(f"pinned {tag} (no rule labels it)")
    if policy.retention:
        keep = policy.retention
        kept = [what for what, on in (("tagged", keep.keep_tagged), ("linked", keep.keep_linked))
                if on]
        lines.append(f"retention: keep the newest {keep.keep_last}"
                     + (f" and every {' and '.join(kept)} version" if kept else ""))
    else:
        lines.append("retention: none")
    return lines


# -- pins ------------------------------------------------------------------------------
def pin_by_hand(txn: Transaction, model: ModelName, tag: str) -> bool:
    """Stage a pin of ``tag`` if the model's policy labels it; True if it is pinned.

    Called by the registry when a person sets or removes a tag (a rollback): from then on
    labelling leaves the tag alone until :func:`unpin`."""
    try:
        policy = read_policy(txn.snapshot, model)
    except ManifestError:
        return False  # a broken policy labels nothing; `modelbox check` reports it
    if policy is None or not any(rule.tag == tag for rule in policy.labelling):
        return False
    if tag not in policy.pinned:
        txn.put(layout.policy_file(model),
                policy.model_copy(update={"pinned": sorted([*policy.pinned, tag])}))
    return True


def pinned(registry: Registry, model: ModelName) -> list[str]:
    """The model's pinned tags (none when it has no policy or a broken one)."""
    try:
        policy = read_policy(registry.snapshot(), model)
    except ManifestError:
        return []
    return list(policy.pinned) if policy else []


def unpin(registry: Registry, model: ModelName, tag: str) -> Policy:
    """Let labelling move ``tag`` again (one ``policy.unpin`` commit)."""
    with registry.transaction() as txn:
        registry.target(txn.snapshot, Reference(model))
        policy = read_policy(txn.snapshot, model)
        if policy is None or tag not in policy.pinned:
            pinned = ", ".join(policy.pinned) if policy else ""
            raise InvalidValueError(f"{model}:{tag} is not pinned (pinned: {pinned or 'none'})")
        policy = policy.model_copy(update={"pinned": [t for t in policy.pinned if t != tag]})
        txn.put(layout.policy_file(model), policy)
        txn.change = Change("policy.unpin", f"{model}:{tag}", f"policy unpin {model}:{tag}")
    return policy


# -- labelling -------------------------------------------------------------------------
class _Candidate(NamedTuple):
    order: tuple[datetime, str]  # creation time, then name: what "older" means
    name: str
    summary: dict[str, float | int | str]
    archived: bool


def _has_artifacts(snap: Snapshot, model: ModelName, version: str) -> bool:
    return bool(snap.listdir(f"{layout.version_dir(model, version)}/{layout.ARTIFACTS_DIR}"))


def _rules_by_tag(policy: Policy) -> dict[str, list[Rule]]:
    out: dict[str, list[Rule]] = {}
    for rule in policy.labelling:
        out.setdefault(rule.tag, []).append(rule.rule())
    return out


def _candidates(
    snap: Snapshot, model: ModelName, version: str, summary: dict[str, float | str],
) -> dict[str, _Candidate]:
    """Every version of ``model`` with its summary (``version``'s as about to be
    committed). Plain JSON: a broken manifest is skipped here and reported by ``check``."""
    out = {}
    for name, is_dir in snap.listdir(layout.versions_dir(model)):
        data = snap.read(layout.version_file(model, name)) if is_dir else None
        if data is None:
            continue
        try:
            doc = limits.loads(data, "version")
            created = isotime.parse(doc["created_at"])
            metrics = summary if name == version else dict(doc.get("metrics") or {})
            archived = doc.get("archived") is True
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        out[name] = _Candidate((created, name), name, metrics, archived)
    return out


def choose(rules: list[Rule], versions: dict[str, _Candidate], holder: str | None) -> str | None:
    """The version that should hold a tag with ``rules``, given its current ``holder``:
    the newest qualifying version, never one older than a holder that still qualifies;
    the holder itself when nothing qualifies."""
    qualifying = sorted((c for c in versions.values()
                         if not c.archived and all_hold(rules, c.summary)),
                        key=lambda c: c.order)
    current = versions.get(holder) if holder is not None else None
    if current is not None and not current.archived and all_hold(rules, current.summary):
        newer = [c for c in qualifying if c.order > current.order]
        return newer[-1].name if newer else holder
    return qualifying[-1].name if qualifying else holder


def apply_labelling(
    registry: Registry, txn: Transaction, model: ModelName, version: str,
    summary: dict[str, float | str], archived: bool,
) -> None:
    """Move the tags whose rules now pick another version (same transaction)."""
    try:
        policy = read_policy(txn.snapshot, model)
    except ManifestError:
        return  # a broken policy file must not block logging; `modelbox check` reports it
    if policy is None or not policy.labelling or txn.change is None:
        return
    tags = registry.tags_in(txn.snapshot, model)
    versions: dict[str, _Candidate] | None = None
    moved = []
    for tag, rules in _rules_by_tag(policy).items():
        if tag in policy.pinned:
            continue
        holder = tags.get(tag)
        if holder != version and (archived or not all_hold(rules, summary)):
            continue  # this version neither holds the tag nor could take it: nothing moves
        if versions is None:  # read every version only when a move is possible
            versions = _candidates(txn.snapshot, model, version, summary)
        pool = versions
        if tag in registry.settings.protected_tags:
            # A protected tag releases (freezes) what it names, and a version with no
            # artifacts cannot be released: such a version does not qualify.
            pool = {name: c for name, c in versions.items()
                    if name == holder or _has_artifacts(txn.snapshot, model, name)}
        best = choose(rules, pool, holder)
        if best is None or best == holder:
            continue
        txn.change.tag_moves.append(TagMove(f"{model}:{tag}", holder, best))
        tags[tag] = best
        moved.append(f"{tag}: {' and '.join(r.describe() for r in rules)}")
    if moved:
        registry.put_tags(txn, model, tags)
        txn.change.policy = "; ".join(moved)
