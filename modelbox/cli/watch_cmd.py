"""``modelbox watch M:TAG --exec CMD``: run CMD each time the tag moves (see
:mod:`modelbox.watch`)."""

from __future__ import annotations

import json
import signal
from types import FrameType

import click

from modelbox.cli._common import Context, echo, json_option, pass_ctx, ref_arg
from modelbox.cli.completion import complete_ref
from modelbox.errors import InvalidValueError


def _line(as_json: bool, document: dict[str, object], text: str, *, err: bool = False) -> None:
    """One line per event: a JSON object per line with ``--json`` (stdout), else text."""
    if as_json:
        echo(json.dumps(document, sort_keys=True, default=str))
    else:
        echo(text, err=err)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@click.command()
@click.argument("ref", metavar="MODEL:TAG", shell_complete=complete_ref)
@click.option("--exec", "command", metavar="CMD", required=True,
              help="Run CMD when the tag moves; split into words like a shell would, never "
              "run through one (use sh -c '...' for pipes). It gets MODELBOX_MODEL, "
              "MODELBOX_TAG, MODELBOX_REF, MODELBOX_VERSION, MODELBOX_PREVIOUS_VERSION, "
              "MODELBOX_COMMIT and MODELBOX_REPO in its environment.")
@click.option("--interval", type=click.FloatRange(min=0.01), default=30.0, show_default=True,
              metavar="SECONDS", help="Seconds between polls.")
@click.option("--max-backoff", type=click.FloatRange(min=0.01), default=300.0,
              show_default=True, metavar="SECONDS",
              help="When the remote cannot be reached, the interval doubles up to this.")
@click.option("--once", is_flag=True,
              help="Stop after the first move: run CMD and exit with its exit code.")
@click.option("--exec-now", is_flag=True,
              help="Also run CMD for the version the tag names when watching starts.")
@json_option
@pass_ctx
def watch(ctx: Context, ref: str, command: str, interval: float, max_backoff: float,
          once: bool, exec_now: bool, as_json: bool) -> None:
    """Poll MODEL:TAG and run CMD each time it moves to another version.

    Through --repo URL each poll fetches the registry; on a folder it reads the branch
    again. One line per move; a CMD that fails is reported and watching goes on.
    Ctrl-C or SIGTERM stop it (exit 0).
    """
    from modelbox import watch as lib
    from modelbox.locations import strip_credentials

    parsed = ref_arg(ref)
    if parsed.tag is None:
        raise InvalidValueError(
            f"watch needs MODEL:TAG, not {parsed} (e.g. {parsed.model}:production)")
    if ctx.offline:
        raise click.UsageError("watch fetches at every poll: --offline contradicts it")
    argv = lib.parse_command(command)
    open_registry = lib.opener(ctx.url, ctx.repo_path, ctx.branch)
    if ctx.url is not None:
        repo = strip_credentials(ctx.url)
    else:  # a folder that is no registry is refused here, before watching starts
        opened = ctx.registry.repo
        repo = str((opened.root or opened.git_dir).resolve())
    shown = str(parsed)

    def poll(first: bool) -> lib.Observation:
        return lib.observe(open_registry, parsed, first=first)

    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        for event in lib.watch(poll, interval=interval, max_backoff=max_backoff):
            if isinstance(event, lib.Unreachable):
                _line(as_json, {"event": "unreachable", "ref": shown, "error": str(event.error),
                                "retry_in": event.delay},
                      f"modelbox: warning: {event.error}; retrying in {event.delay:g} s",
                      err=True)
                continue
            if isinstance(event, lib.Recovered):
                _line(as_json, {"event": "recovered", "ref": shown, "failures": event.failures},
                      f"modelbox: reached the registry again after {event.failures} "
                      "failed poll(s)", err=True)
                continue
            code = _change(event, parsed, shown, argv, repo, as_json, exec_now, once)
            if once and code is not None:
                click.get_current_context().exit(code)
    except KeyboardInterrupt:
        return
    finally:
        signal.signal(signal.SIGTERM, previous)


def _change(event: object, parsed: object, shown: str, argv: list[str], repo: str,
            as_json: bool, exec_now: bool, once: bool) -> int | None:
    """Print one change and run CMD for it; CMD's exit code, None if it did not run."""
    from modelbox import watch as lib
    from modelbox.names import Reference

    assert isinstance(event, lib.Change) and isinstance(parsed, Reference)
    doc: dict[str, object] = {"ref": shown, "version": event.after,
                              "previous": event.before, "commit": event.commit}
    if event.first:
        _line(as_json, {"event": "watching", **doc},
              f"watching {shown}: {event.after or 'not set'}")
        if not exec_now or event.after is None:
            return None
    elif event.after is None:
        _line(as_json, {"event": "removed", **doc}, f"{shown} removed (was {event.before})")
        return None
    else:
        _line(as_json, {"event": "moved", **doc},
              f"{shown} -> {event.after} (was {event.before or 'not set'})")
    code = lib.run_command(argv, lib.command_env(parsed, event, repo))
    if code != 0:
        _line(as_json, {"event": "exec-failed", **doc, "exit_code": code},
              f"modelbox: warning: {argv[0]} exited with {code} for {shown} -> {event.after}"
              + ("" if once else "; watching on"), err=True)
    return code


COMMANDS = [watch]
