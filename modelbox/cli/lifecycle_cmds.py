"""``modelbox experiment|checkpoint|metrics|event ...``."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TextIO

import click

from modelbox import isotime
from modelbox.cli._common import (
    Context,
    done,
    echo,
    emit_json,
    json_option,
    model_arg,
    parse_meta,
    pass_ctx,
    ref_arg,
    target_name,
)
from modelbox.cli.completion import complete_model, complete_ref
from modelbox.cli.ingest_cmd import experiment_watch
from modelbox.errors import InvalidValueError

if TYPE_CHECKING:
    from modelbox.manifests import Policy
    from modelbox.registry import MetricValue


def _done(ctx: Context, as_json: bool, document: dict[str, Any], message: str) -> None:
    """:func:`done`, with what an experiment policy decided after the write (promotions,
    archived checkpoints), if anything."""
    decisions = [d.to_json() for d in ctx.registry.decisions]
    done(as_json, {**document, "decisions": decisions} if decisions else document, message)
    if not as_json:
        report_decisions(ctx)


def report_decisions(ctx: Context) -> None:
    """One line per decision an experiment policy made after this command's write."""
    for d in (d.to_json() for d in ctx.registry.decisions):
        what = f"promoted to {d['target']}" if d["action"] == "promote" else "archived"
        echo(f"{d['checkpoint']} {what} (policy: {d['policy']})")


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
@json_option
@pass_ctx
def experiment_create(
    ctx: Context, name: str, owner: str, task: str, framework: str, external_id: str,
    meta: tuple[str, ...], as_json: bool,
) -> None:
    """Create experiment NAME (NAMESPACE/NAME), or show that it exists."""
    from modelbox import lifecycle

    made = lifecycle.create_experiment(
        ctx.registry, model_arg(name), owner=owner, task=task, framework=framework,
        external_id=external_id, metadata=parse_meta(meta),
    )
    done(as_json, made.model_dump(mode="json"), f"Experiment {made.full_name}")


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


@experiment.command("update")
@click.argument("name")
@click.option("--best-by", metavar="METRIC", help="The metric NAME:best ranks checkpoints by.")
@click.option("--min/--max", "minimize", default=None,
              help="Lower (--min) or higher (--max) --best-by values are better.")
@click.option("--clear-best", is_flag=True, help="Forget the best metric (NAME:best fails).")
@json_option
@pass_ctx
def experiment_update(ctx: Context, name: str, best_by: str | None, minimize: bool | None,
                      clear_best: bool, as_json: bool) -> None:
    """Change experiment NAME: the metric and direction of NAME:best."""
    from modelbox import lifecycle

    if clear_best and (best_by or minimize is not None):
        raise InvalidValueError("--clear-best takes no --best-by/--min/--max")
    if not clear_best and best_by is None:
        raise InvalidValueError("nothing to update: give --best-by METRIC --min|--max "
                                "(or --clear-best)")
    direction = None if minimize is None else "min" if minimize else "max"
    made = lifecycle.update_experiment(ctx.registry, model_arg(name), best_by=best_by,
                                       best_direction=direction, clear_best=clear_best)
    best = f"best by {made.best_by} ({made.best_direction})" if made.best_by else "no best"
    done(as_json, made.model_dump(mode="json"), f"Experiment {made.full_name}: {best}")


@experiment.command("delete")
@click.argument("name")
@click.option("--force", is_flag=True, help="Delete even if a checkpoint was promoted to a "
              "model version (that version keeps its artifacts; its source is gone).")
@json_option
@pass_ctx
def experiment_delete(ctx: Context, name: str, force: bool, as_json: bool) -> None:
    """Delete experiment NAME with its checkpoints in one commit (Git history keeps them)."""
    from modelbox.cli._removed import report_removed
    from modelbox.removal import delete_experiment

    removed = delete_experiment(ctx.registry, model_arg(name), force=force)
    report_removed("experiment", removed, as_json)


experiment.add_command(experiment_watch)


@click.group()
def checkpoint() -> None:
    """Checkpoints of an experiment (EXPERIMENT@CHECKPOINT)."""


@checkpoint.command("create")
@click.argument("experiment_name", metavar="EXPERIMENT")
@click.argument("checkpoint_id", metavar="CHECKPOINT")
@click.option("--epoch", type=click.IntRange(min=0))
@click.option("--step", type=click.IntRange(min=0))
@json_option
@pass_ctx
def checkpoint_create(
    ctx: Context, experiment_name: str, checkpoint_id: str, epoch: int | None,
    step: int | None, as_json: bool,
) -> None:
    """Record a checkpoint; attach files with `modelbox artifact add EXPERIMENT@CHECKPOINT`."""
    from modelbox import lifecycle

    made = lifecycle.create_checkpoint(ctx.registry, model_arg(experiment_name), checkpoint_id,
                                       epoch=epoch, step=step)
    _done(ctx, as_json, made.model_dump(mode="json"),
          f"Checkpoint {made.experiment}@{made.checkpoint}")


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
        echo(f"{c.checkpoint}\tepoch={c.epoch}\t{metrics}\t{','.join(c.promoted_to)}"
             + ("\tarchived" if c.archived else ""))


@checkpoint.command("archive")
@click.argument("source", metavar="EXPERIMENT@CHECKPOINT")
@click.option("--restore", is_flag=True, help="Bring an archived checkpoint back.")
@json_option
@pass_ctx
def checkpoint_archive(ctx: Context, source: str, restore: bool, as_json: bool) -> None:
    """Archive a checkpoint (kept, still EXP:latest if newest; gc --no-history frees its
    objects), or --restore it (retention may archive it again at the next checkpoint)."""
    from modelbox import autopromote, resolver

    found = resolver.resolve(ctx.registry.snapshot(), ref_arg(source), version_needed=True)
    if not found.experiment or found.version is None:
        raise InvalidValueError(f"{source} is no checkpoint; give EXPERIMENT@CHECKPOINT")
    changed = autopromote.archive_checkpoint(ctx.registry, found.model, found.version,
                                             archived=not restore)
    name = f"{found.model}@{found.version}"
    verb = "Restored" if restore else "Archived"
    done(as_json, {"checkpoint": name, "archived": not restore, "changed": changed},
         f"{verb} {name}" if changed else f"{name} was {verb.lower()} already")


@checkpoint.command("promote")
@click.argument("source", metavar="EXPERIMENT@CHECKPOINT")
@click.argument("dest", metavar="MODEL@VERSION", shell_complete=complete_ref)
@click.option("--tag", "tags", multiple=True, help="A unique tag for the new version.")
@json_option
@pass_ctx
def checkpoint_promote(
    ctx: Context, source: str, dest: str, tags: tuple[str, ...], as_json: bool
) -> None:
    """Make a model version from a checkpoint (same stored objects, no upload)."""
    from modelbox import lifecycle, resolver

    src, dst = ref_arg(source), ref_arg(dest)
    found = resolver.resolve(ctx.registry.snapshot(), src, version_needed=True)
    if not found.experiment or found.version is None:
        raise InvalidValueError(f"{source} is no checkpoint; give EXPERIMENT@CHECKPOINT")
    if dst.version is None:
        raise InvalidValueError(f"{dest}: give the new version as MODEL@VERSION")
    made = lifecycle.promote(ctx.registry, found.model, found.version, dst.model, dst.version,
                             tags=list(tags))
    done(as_json, {**made.model_dump(mode="json"), "tags": list(dict.fromkeys(tags))},
         f"Promoted {source} to {made.model}@{made.version}")


@click.group()
def metrics() -> None:
    """Metric series of a model, version, experiment or checkpoint."""


def _metric_values(pairs: tuple[str, ...]) -> dict[str, MetricValue]:
    """``KEY=VALUE`` pairs for ``metrics log``, read as ``--meta`` reads them (same limits);
    a VALUE that is a number stays one (NaN too, so the registry refuses it by name);
    anything else is the text as typed -- a tensor ``[[1,0],[0,1]]``, ``true`` -- never
    decoded."""
    decoded = parse_meta(pairs)
    raw = dict(pair.partition("=")[::2] for pair in pairs)
    return {
        key: value if isinstance(value, (int, float)) and not isinstance(value, bool)
        else raw[key]
        for key, value in decoded.items()
    }


@metrics.command("log")
@click.argument("target", metavar="TARGET")
@click.argument("values", nargs=-1, required=True, metavar="KEY=VALUE...")
@click.option("--step", type=int)
@click.option("--wallclock", type=float, help="Seconds since the epoch (default: now).")
@json_option
@pass_ctx
def metrics_log(
    ctx: Context, target: str, values: tuple[str, ...], step: int | None,
    wallclock: float | None, as_json: bool,
) -> None:
    """Log one point per KEY (numbers stay numbers, anything else is text, e.g. a tensor
    as a string: cm='[[1,0],[0,1]]')."""
    ref, points = ref_arg(target), _metric_values(values)
    name = target_name(ctx, ref)  # before: a labelling policy may move the tag it names
    ctx.registry.log_metrics(ref, points, step=step, wallclock=wallclock)
    _done(ctx, as_json, {"target": name, "metrics": points, "step": step,
                         "wallclock": wallclock},
          f"Logged {len(values)} metric(s) on {target}")


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
@json_option
@pass_ctx
def event_log(
    ctx: Context, target: str, name: str, source: str, wallclock: float | None,
    meta: tuple[str, ...], as_json: bool,
) -> None:
    """Record event NAME on TARGET."""
    from modelbox import lifecycle

    ref, metadata = ref_arg(target), parse_meta(meta)
    resolved = target_name(ctx, ref)
    lifecycle.log_events(ctx.registry, ref, [lifecycle.Event(name, source, wallclock, metadata)])
    done(as_json, {"target": resolved, "event": {"name": name, "source": source,
                   "wallclock": wallclock, "metadata": metadata}},
         f"Logged {name} on {target}")


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
            cutoff = isotime.parse(since)
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


@click.group()
def policy() -> None:
    """Policies: labelling and retention on a model, promotion and checkpoint retention on
    an experiment (see docs/policies.md)."""


def _is_experiment(ctx: Context, name: str) -> bool:
    from modelbox import layout

    snap = ctx.registry.snapshot()
    ref = model_arg(name)
    return (snap.read(layout.model_file(ref)) is None
            and snap.read(layout.experiment_file(ref)) is not None)


@policy.command("set")
@click.argument("model", shell_complete=complete_model)
@click.option("--label", "labels", multiple=True, metavar="'TAG:METRIC[/DATASET] OP VALUE'",
              help="Add a rule: TAG goes to the newest version meeting every rule of TAG "
              "(OP: >= <= > < == !=; repeatable; rules of one tag are ANDed).")
@click.option("--clear-label", "clear_labels", multiple=True, metavar="TAG",
              help="Remove every rule of TAG (before --label adds; repeatable).")
@click.option("--keep-last", type=click.IntRange(min=1),
              help="Retention: newest N versions (checkpoints, for an experiment).")
@click.option("--clear-keep-last", is_flag=True, help="Remove the retention rule.")
@click.option("--keep-tagged/--no-keep-tagged", default=None,
              help="Retention keeps tagged versions (default when retention is added: yes).")
@click.option("--keep-linked/--no-keep-linked", default=None,
              help="Retention keeps versions a collection links (default: yes).")
@click.option("--promote-to", metavar="MODEL",
              help="Experiment: promote each checkpoint meeting every --when rule to a new "
              "version of MODEL (once per checkpoint).")
@click.option("--when", "when", multiple=True, metavar="'METRIC[/DATASET] OP VALUE'",
              help="Experiment: a promotion rule (repeatable; all must hold).")
@click.option("--tag", help="Experiment: tag each promoted version (the tag moves along).")
@click.option("--clear-promotion", is_flag=True, help="Experiment: remove the promotion rule.")
@click.option("--keep-best", type=click.IntRange(min=1),
              help="Experiment: keep the N best checkpoints --by a metric.")
@click.option("--by", metavar="METRIC", help="Experiment: the metric --keep-best ranks by.")
@click.option("--min/--max", "minimize", default=None,
              help="Experiment: lower (--min) or higher (--max) --by values are better.")
@click.option("--file", "document", type=click.File("r"),
              help="Replace the whole policy with this JSON document.")
@json_option
@pass_ctx
def policy_set(
    ctx: Context, model: str, labels: tuple[str, ...], clear_labels: tuple[str, ...],
    keep_last: int | None, clear_keep_last: bool, keep_tagged: bool | None,
    keep_linked: bool | None, promote_to: str | None, when: tuple[str, ...],
    tag: str | None, clear_promotion: bool, keep_best: int | None, by: str | None,
    minimize: bool | None, document: TextIO | None, as_json: bool,
) -> None:
    """Change the named fields of MODEL's (or EXPERIMENT's) policy, keep the rest, print the
    whole policy.

    With no option it only prints the policy. Each change is one commit."""
    from modelbox import policies

    name = model_arg(model)
    experiment_only = (promote_to, when, tag, clear_promotion, keep_best, by,
                       minimize is not None)
    model_only = (labels, clear_labels, keep_tagged is not None, keep_linked is not None,
                  document)
    if _is_experiment(ctx, model):
        from modelbox import autopromote

        if any(model_only):
            raise InvalidValueError(
                f"{model} is an experiment: its policy takes --promote-to/--when/--tag and "
                "--keep-last/--keep-best/--by/--min/--max (labelling is for models)")
        if any(experiment_only) or keep_last is not None or clear_keep_last:
            made: Policy | None = autopromote.edit_policy(
                ctx.registry, name, promote_to=promote_to, when=when, tag=tag,
                clear_promotion=clear_promotion, keep_last=keep_last, keep_best=keep_best,
                by=by, minimize=minimize, clear_retention=clear_keep_last)
        else:
            made = autopromote.get_policy(ctx.registry, name)
        _show_policy(model, made, as_json, experiment=True)
        return
    if any(experiment_only):
        raise InvalidValueError(
            "--promote-to/--when/--tag/--keep-best/--by/--min/--max are for an experiment's "
            f"policy; {model} is a model (see `modelbox policy set --help`)")
    edits = (labels, clear_labels, keep_last is not None, clear_keep_last,
             keep_tagged is not None, keep_linked is not None)
    if document is not None:
        if any(edits):
            raise InvalidValueError("--file replaces the whole policy; give it alone")
        try:
            spec = json.load(document)
        except ValueError as exc:
            raise InvalidValueError(f"--file is not JSON: {exc}") from None
        if not isinstance(spec, dict):
            raise InvalidValueError("--file must hold a JSON object")
        made = policies.set_policy(ctx.registry, name, spec)
    elif any(edits):
        made = policies.edit_policy(
            ctx.registry, name, labels=labels, clear_labels=clear_labels, keep_last=keep_last,
            clear_keep_last=clear_keep_last, keep_tagged=keep_tagged, keep_linked=keep_linked)
    else:
        made = policies.get_policy(ctx.registry, name)
    _show_policy(model, made, as_json)


def _show_policy(model: str, found: Policy | None, as_json: bool, *,
                 experiment: bool = False) -> None:
    from modelbox import autopromote, policies

    if as_json:
        emit_json(found.model_dump(mode="json") if found else None)
        return
    if found is None:
        echo(f"{model} has no policy")
        return
    echo(f"Policy of {model}:")
    for line in (autopromote.describe(found) if experiment else policies.describe(found)):
        echo(f"  {line}")


@policy.command("show")
@click.argument("model", shell_complete=complete_model)
@json_option
@pass_ctx
def policy_show(ctx: Context, model: str, as_json: bool) -> None:
    """Show MODEL's (or EXPERIMENT's) policy."""
    from modelbox import autopromote, policies

    if _is_experiment(ctx, model):
        _show_policy(model, autopromote.get_policy(ctx.registry, model_arg(model)), as_json,
                     experiment=True)
        return
    _show_policy(model, policies.get_policy(ctx.registry, model_arg(model)), as_json)


@policy.command("unpin")
@click.argument("model", shell_complete=complete_model)
@click.argument("tag")
@json_option
@pass_ctx
def policy_unpin(ctx: Context, model: str, tag: str, as_json: bool) -> None:
    """Let labelling move TAG again (a manual `modelbox tag` pinned it)."""
    from modelbox import policies

    policies.unpin(ctx.registry, model_arg(model), tag)
    done(as_json, {"model": model, "tag": tag, "pinned": False},
         f"Unpinned {model}:{tag}: labelling may move it again at the next metrics log")


@policy.command("clear")
@click.argument("model", shell_complete=complete_model)
@json_option
@pass_ctx
def policy_clear(ctx: Context, model: str, as_json: bool) -> None:
    """Remove MODEL's (or EXPERIMENT's) policy."""
    from modelbox import autopromote, policies

    name = model_arg(model)
    if _is_experiment(ctx, model):
        autopromote.clear_policy(ctx.registry, name)
    else:
        policies.clear_policy(ctx.registry, name)
    done(as_json, {"model": str(name), "policy": None}, f"Removed the policy of {model}")


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
    for ckpt in plan.checkpoints:  # archived by checkpoint retention (or by hand)
        echo(f"{verb} free archived checkpoint {ckpt.checkpoint}: {ckpt.freed} of "
             f"{ckpt.objects} object(s), {ckpt.freed_bytes} of {ckpt.bytes} bytes"
             if ckpt.freed else f"archived checkpoint {ckpt.checkpoint} keeps {ckpt.objects} "
             f"object(s), {ckpt.bytes} bytes" + (" (old commits and the reflog name them: "
                                                 "gc --no-history frees them)" if history
                                                 else " (named elsewhere)"))
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
