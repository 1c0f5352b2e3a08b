"""``modelbox experiment|checkpoint|metrics|event ...``."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import TextIO

import click

from modelbox.cli._common import (
    Context,
    echo,
    emit_json,
    json_option,
    model_arg,
    parse_meta,
    pass_ctx,
    ref_arg,
)
from modelbox.errors import InvalidValueError


@click.group()
def experiment() -> None:
    """Training runs: hyperparameters, metric series, events, checkpoints."""


@experiment.command("create")
@click.argument("name")
@click.option("--owner", default="")
@click.option("--task", default="")
@click.option("--framework", default="unknown")
@click.option("--external-id", default="", help="The run's id in another tracker.")
@click.option("--meta", "meta", multiple=True, metavar="KEY=VALUE", help="Hyperparameters.")
@pass_ctx
def experiment_create(
    ctx: Context, name: str, owner: str, task: str, framework: str, external_id: str,
    meta: tuple[str, ...],
) -> None:
    """Create experiment NAME (NAMESPACE/NAME), or show that it exists."""
    from modelbox import lifecycle

    made = lifecycle.create_experiment(
        ctx.registry, model_arg(name), owner=owner, task=task, framework=framework,
        external_id=external_id, metadata=parse_meta(meta),
    )
    echo(f"Experiment {made.full_name}")


@experiment.command("list")
@click.argument("namespace", required=False)
@json_option
@pass_ctx
def experiment_list(ctx: Context, namespace: str | None, as_json: bool) -> None:
    """List experiments, optionally in NAMESPACE and below."""
    from modelbox import lifecycle

    found = lifecycle.list_experiments(ctx.registry, namespace)
    if as_json:
        emit_json([e.model_dump(mode="json") for e in found])
        return
    for e in found:
        echo(f"{e.full_name}\t{e.owner}\t{e.framework.value}\t{e.created_at.isoformat()}")


@click.group()
def checkpoint() -> None:
    """Checkpoints of an experiment (EXPERIMENT@CHECKPOINT)."""


@checkpoint.command("create")
@click.argument("experiment_name", metavar="EXPERIMENT")
@click.argument("checkpoint_id", metavar="CHECKPOINT")
@click.option("--epoch", type=click.IntRange(min=0))
@click.option("--step", type=click.IntRange(min=0))
@pass_ctx
def checkpoint_create(
    ctx: Context, experiment_name: str, checkpoint_id: str, epoch: int | None, step: int | None
) -> None:
    """Record a checkpoint; attach files with `modelbox artifact add EXPERIMENT@CHECKPOINT`."""
    from modelbox import lifecycle

    made = lifecycle.create_checkpoint(ctx.registry, model_arg(experiment_name), checkpoint_id,
                                       epoch=epoch, step=step)
    echo(f"Checkpoint {made.experiment}@{made.checkpoint}")


@checkpoint.command("list")
@click.argument("experiment_name", metavar="EXPERIMENT")
@json_option
@pass_ctx
def checkpoint_list(ctx: Context, experiment_name: str, as_json: bool) -> None:
    """List an experiment's checkpoints, oldest first, with their metric summaries."""
    from modelbox import lifecycle

    found = lifecycle.list_checkpoints(ctx.registry, model_arg(experiment_name))
    if as_json:
        emit_json([c.model_dump(mode="json") for c in found])
        return
    for c in found:
        metrics = ", ".join(f"{k}={v}" for k, v in sorted(c.metrics.items()))
        echo(f"{c.checkpoint}\tepoch={c.epoch}\t{metrics}\t{','.join(c.promoted_to)}")


@checkpoint.command("promote")
@click.argument("source", metavar="EXPERIMENT@CHECKPOINT")
@click.argument("dest", metavar="MODEL@VERSION")
@click.option("--tag", "tags", multiple=True, help="A unique tag for the new version.")
@pass_ctx
def checkpoint_promote(ctx: Context, source: str, dest: str, tags: tuple[str, ...]) -> None:
    """Make a model version from a checkpoint (same stored objects, no upload)."""
    from modelbox import lifecycle

    src, dst = ref_arg(source), ref_arg(dest)
    if src.version is None or dst.version is None:
        raise InvalidValueError("give EXPERIMENT@CHECKPOINT and MODEL@VERSION")
    made = lifecycle.promote(ctx.registry, src.model, src.version, dst.model, dst.version,
                             tags=list(tags))
    echo(f"Promoted {source} to {made.model}@{made.version}")


@click.group()
def metrics() -> None:
    """Metric series of a model, version, experiment or checkpoint."""


@metrics.command("log")
@click.argument("target", metavar="TARGET")
@click.argument("values", nargs=-1, required=True, metavar="KEY=VALUE...")
@click.option("--step", type=int)
@click.option("--wallclock", type=float, help="Seconds since the epoch (default: now).")
@pass_ctx
def metrics_log(
    ctx: Context, target: str, values: tuple[str, ...], step: int | None,
    wallclock: float | None,
) -> None:
    """Log one point per KEY (numbers stay numbers, anything else is text)."""
    ctx.registry.log_metrics(ref_arg(target), parse_meta(values), step=step, wallclock=wallclock)
    echo(f"Logged {len(values)} metric(s) on {target}")


@metrics.command("show")
@click.argument("target", metavar="TARGET")
@click.option("--plot", type=click.Path(dir_okay=False), help="Also draw the series to a PNG.")
@json_option
@pass_ctx
def metrics_show(ctx: Context, target: str, plot: str | None, as_json: bool) -> None:
    """Every series with step, wallclock and value."""
    series = ctx.registry.metrics(ref_arg(target))
    if plot:
        from modelbox.plots import plot_series

        plot_series(series, plot, title=target)
    if as_json:
        emit_json(series)
        return
    for key, points in sorted(series.items()):
        last, value = points[-1], points[-1]["value"]
        if isinstance(value, dict):  # {"bytes": base64}: the size, not the text
            value = f"<{len(value['bytes']) * 3 // 4 - value['bytes'][-2:].count('=')} bytes>"
        echo(f"{key}\t{len(points)} point(s)\tlast={value} (step {last['step']})")


@click.group()
def event() -> None:
    """Events from outside systems (deployments, benchmarks, ...)."""


@event.command("log")
@click.argument("target", metavar="TARGET")
@click.argument("name")
@click.option("--source", default="", help="Who sent it (k8s/prod, ci, ...).")
@click.option("--wallclock", type=float, help="Seconds since the epoch (default: now).")
@click.option("--meta", "meta", multiple=True, metavar="KEY=VALUE")
@pass_ctx
def event_log(
    ctx: Context, target: str, name: str, source: str, wallclock: float | None,
    meta: tuple[str, ...],
) -> None:
    """Record event NAME on TARGET."""
    from modelbox import lifecycle

    lifecycle.log_events(ctx.registry, ref_arg(target), [
        lifecycle.Event(name, source, wallclock, parse_meta(meta))
    ])
    echo(f"Logged {name} on {target}")


@event.command("list")
@click.argument("target", metavar="TARGET")
@click.option("--since", help="Only events at or after this ISO 8601 date or time.")
@json_option
@pass_ctx
def event_list(ctx: Context, target: str, since: str | None, as_json: bool) -> None:
    """List TARGET's events in the order they were logged."""
    from modelbox import lifecycle

    cutoff = None
    if since:
        try:
            cutoff = datetime.fromisoformat(since)
        except ValueError:
            raise InvalidValueError(f"--since {since!r} is not an ISO 8601 date") from None
        cutoff = cutoff if cutoff.tzinfo else cutoff.astimezone(timezone.utc)
    events = lifecycle.list_events(ctx.registry, ref_arg(target), cutoff)
    if as_json:
        emit_json([{"name": e.name, "source": e.source, "wallclock": e.wallclock,
                    "metadata": e.metadata} for e in events])
        return
    for e in events:
        when = datetime.fromtimestamp(e.wallclock or 0, timezone.utc).isoformat()
        echo(f"{when}\t{e.name}\t{e.source}")


_LABEL = re.compile(r"^(?P<tag>[^:]+):(?P<metric>[^<>=]+?)(?P<op>>=|<=|>|<)(?P<value>.+)$")


@click.group()
def policy() -> None:
    """Labelling and retention policies on a model."""


@policy.command("set")
@click.argument("model")
@click.option("--label", "labels", multiple=True, metavar="TAG:METRIC>=VALUE",
              help="Give TAG to the version whose METRIC meets the bound (repeatable).")
@click.option("--keep-last", type=click.IntRange(min=1), help="Retention: newest N versions.")
@click.option("--keep-tagged/--no-keep-tagged", default=True, show_default=True)
@click.option("--file", "document", type=click.File("r"), help="The policy as JSON.")
@pass_ctx
def policy_set(
    ctx: Context, model: str, labels: tuple[str, ...], keep_last: int | None,
    keep_tagged: bool, document: TextIO | None,
) -> None:
    """Replace MODEL's policy (a commit like any other)."""
    from modelbox import policies

    if document is not None:
        try:
            spec = json.load(document)
        except ValueError as exc:
            raise InvalidValueError(f"--file is not JSON: {exc}") from None
        if not isinstance(spec, dict):
            raise InvalidValueError("--file must hold a JSON object")
    else:
        rules = []
        for label in labels:
            match = _LABEL.match(label)
            if match is None:
                raise InvalidValueError(f"--label wants TAG:METRIC>=VALUE, got {label!r}")
            rules.append({**match.groupdict(), "value": match["value"]})
        spec = {"labelling": rules}
        if keep_last is not None:
            spec["retention"] = {"keep_last": keep_last, "keep_tagged": keep_tagged}
    made = policies.set_policy(ctx.registry, model_arg(model), spec)
    echo(f"Policy of {model}: {len(made.labelling)} labelling rule(s), retention "
               + (f"keep {made.retention.keep_last}" if made.retention else "none"))


@policy.command("show")
@click.argument("model")
@json_option
@pass_ctx
def policy_show(ctx: Context, model: str, as_json: bool) -> None:
    """Show MODEL's policy."""
    from modelbox import policies

    found = policies.get_policy(ctx.registry, model_arg(model))
    if as_json:
        emit_json(found.model_dump(mode="json") if found else None)
        return
    if found is None:
        echo(f"{model} has no policy")
        return
    for rule in found.labelling:
        echo(f"label {rule.describe()}")
    if found.retention:
        echo(f"retention: keep the newest {found.retention.keep_last}"
                   + (" and tagged versions" if found.retention.keep_tagged else ""))


@policy.command("clear")
@click.argument("model")
@pass_ctx
def policy_clear(ctx: Context, model: str) -> None:
    """Remove MODEL's policy."""
    from modelbox import policies

    policies.clear_policy(ctx.registry, model_arg(model))
    echo(f"Removed the policy of {model}")


@click.command()
@click.option("--dry-run", is_flag=True, help="Report what would go and what keeps the rest; "
              "change nothing.")
@click.option("--grace", type=click.FloatRange(min=0), default=336.0, show_default=True,
              help="Hours an unreferenced object is kept after it was written or claimed "
              "(14 days, like git's gc.pruneExpire): other clones' unpushed commits need it.")
@click.option("--history/--no-history", default=True, show_default=True,
              help="Keep objects old commits, reflogs and archived versions need.")
@click.option("--i-own-this-store", "own_store", is_flag=True,
              help="Collect even though another registry wrote to this store (its objects "
              "are then deleted): only when that registry is gone or moved to its own store.")
@json_option
@pass_ctx
def gc(ctx: Context, dry_run: bool, grace: float, history: bool, own_store: bool,
       as_json: bool) -> None:
    """Apply retention policies, then delete store objects nothing references.

    Kept: what any ref, HEAD, worktree HEAD or recent reflog entry reaches (what git gc
    keeps), and every object written or claimed by any clone within --grace hours.
    """
    from modelbox import gc as collector
    from modelbox.artifacts import open_registry_store

    store = open_registry_store(ctx.registry)
    plan = collector.plan(ctx.registry, store, grace * 3600, history=history,
                          own_store=own_store)
    if not dry_run:
        collector.run(ctx.registry, store, plan)
    if as_json:
        emit_json({**plan.to_json(), "dry_run": dry_run})
        return
    verb = "would" if dry_run else "did"
    for model_version in plan.archive:
        echo(f"{verb} archive {model_version[0]}@{model_version[1]} (retention)")
    for digest in plan.delete:
        echo(f"{verb} delete sha256:{digest}")
    for digest in plan.unreadable:
        echo(f"kept everything: cannot read directory manifest sha256:{digest}", err=True)
    for writer in plan.foreign:
        echo(f"warning: another registry ({writer.registry[:12] or 'unknown'}, clone "
                   f"{writer.where}) writes to this store; --i-own-this-store ignored it",
                   err=True)
    echo(plan.roots)
    echo(f"kept objects written or claimed within the grace period ({grace:g} hours): "
               f"{plan.young} written, {plan.claimed} claimed by a write in some clone")
    if plan.others:
        echo(f"{len(plan.others)} other clone(s) of this registry write to this store "
                   "(their commits not pushed yet are safe within the grace period): "
                   + ", ".join(w.where for w in plan.others))
    echo(f"{len(plan.archive)} version(s) archived, {len(plan.delete)} object(s) deleted,"
               f" {plan.referenced} referenced, {plan.young} too young, {plan.claimed} claimed"
               + (" (dry run)" if dry_run else ""))


COMMANDS = [experiment, checkpoint, metrics, event, policy, gc]
