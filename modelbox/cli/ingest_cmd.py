"""``modelbox experiment watch EXP DIR``: ingest the checkpoints a trainer writes (see
:mod:`modelbox.ingest`)."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import click

from modelbox.cli._common import Context, echo, json_option, model_arg, pass_ctx


@click.command("watch")
@click.argument("experiment_name", metavar="EXPERIMENT")
@click.argument("folder", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--interval", type=click.FloatRange(min=0.01), default=2.0, show_default=True,
              metavar="SECONDS", help="Seconds between looks at DIR.")
@click.option("--once", is_flag=True, help="Ingest what is complete now, then exit.")
@click.option("--nice", "niceness", type=click.IntRange(0, 19), default=10, show_default=True,
              metavar="N", help="Run N nicer than the shell (as nice -n N), so that a "
              "trainer sharing the CPU comes first; 0 keeps its priority (Linux).")
@json_option
@pass_ctx
def experiment_watch(ctx: Context, experiment_name: str, folder: Path, interval: float,
                     once: bool, niceness: int, as_json: bool) -> None:
    """Ingest each checkpoint a trainer writes into DIR once it is complete, exactly once.

    Hugging Face checkpoint-N/ folders, Lightning *.ckpt, Keras *.keras / *.h5,
    *.safetensors, and folders holding a .modelbox-complete marker (docs/experiments.md);
    their metrics go to the experiment (created if missing). One line per checkpoint
    (a JSON object per line with --json). Ctrl-C or SIGTERM stop it after the checkpoint
    in hand (exit 0); a second one stops it at once (what was cut short is redone later).
    """
    from modelbox.ingest import Ingested, Watcher

    def ingested(made: Ingested) -> None:
        echo(json.dumps(made.to_json(), sort_keys=True) if as_json else made.line())

    def warned(message: str) -> None:
        echo(f"modelbox: {message}" if message.startswith("warning:")
             else f"modelbox: warning: {message}", err=True)

    watcher = Watcher(ctx.registry, model_arg(experiment_name), folder,
                      on_ingested=ingested, on_warning=warned)
    if once:
        _niced(niceness, watcher.poll)
        return
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    def polls() -> None:
        while not stop.is_set():
            watcher.poll(stop)
            stop.wait(interval)

    try:
        _niced(niceness, polls)
    except KeyboardInterrupt:
        return
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _niced(niceness: int, work: Callable[[], object]) -> None:
    """Run ``work`` in a thread of its own, ``niceness`` nicer (and the upload threads it
    starts): the calling thread keeps its priority, which nobody could give back without
    privilege (a script or a test running the command in-process). This thread still
    takes the signals; ``work``'s exception is raised here."""
    from modelbox.processes import yield_cpu

    failed: list[BaseException] = []

    def run() -> None:
        yield_cpu(niceness)
        try:
            work()
        except BaseException as exc:  # raised again in the calling thread
            failed.append(exc)

    thread = threading.Thread(target=run, name="modelbox-watch", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.2)  # short waits: a signal handler runs between them
    if failed:
        raise failed[0]
