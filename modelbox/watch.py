"""``modelbox watch M:TAG --exec CMD``: run a command when a tag moves (no server needed).

:func:`observe` reads what ``M:TAG`` names now, through the one resolver
(:mod:`modelbox.resolver`), from a registry opened anew for each poll: a URL's mirror is
fetched every time (:func:`modelbox.urlread.open_url` with ``refresh``, the one fetch
path), a folder's branch is read again. :func:`watch` polls and yields what happened;
the CLI prints it and runs the command (:func:`run_command`).

A remote that cannot be reached (:class:`~modelbox.errors.RemoteError`) backs the
interval off, doubling up to a cap, and comes back to it once the remote answers.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from modelbox.errors import (
    DanglingTagError,
    InvalidValueError,
    ModelNotFoundError,
    RemoteError,
    TagNotFoundError,
)
from modelbox.names import Reference
from modelbox.registry import Registry

__all__ = ["Change", "Observation", "Recovered", "Unreachable", "command_env", "observe", "opener",
           "parse_command", "run_command", "watch"]

DEFAULT_INTERVAL = 30.0
DEFAULT_MAX_BACKOFF = 300.0


@dataclass(frozen=True)
class Observation:
    """What ``M:TAG`` named at one poll: ``version`` None when the tag (or model) is gone."""

    version: str | None
    commit: str | None


@dataclass(frozen=True)
class Change:
    """The tag moved (``first``: the first poll, recording what it names)."""

    before: str | None
    after: str | None
    commit: str | None
    first: bool = False


@dataclass(frozen=True)
class Unreachable:
    """A poll failed to reach the remote; the next one is in ``delay`` seconds."""

    error: RemoteError
    delay: float


@dataclass(frozen=True)
class Recovered:
    """The remote answered again after :class:`Unreachable` polls."""

    failures: int


Event = Change | Unreachable | Recovered


def opener(url: str | None, path: Path | None, branch: str | None) -> Callable[[], Registry]:
    """Opens the registry afresh for each poll: a URL's mirror fetched now, a folder's
    branch read again."""
    def open_registry() -> Registry:
        if url is not None:
            from modelbox.urlread import open_url

            return open_url(url, branch=branch, refresh=True)
        registry = Registry.open(path)
        registry.target_branch = branch
        return registry
    return open_registry


def observe(open_registry: Callable[[], Registry], ref: Reference, *,
            first: bool = False) -> Observation:
    """What ``ref`` names now; a missing tag (or, after the ``first`` poll, a missing
    model) reads as version None.

    Raises:
        RemoteError: the remote cannot be reached.
        ModelboxError: anything else wrong (not a registry, a bad reference).
    """
    from modelbox import resolver

    registry = open_registry()
    try:
        snap = registry.snapshot()
        try:
            version = resolver.resolve_version(snap, ref)
        except (TagNotFoundError, DanglingTagError):
            version = None
        except ModelNotFoundError:
            if first:
                raise
            version = None
        return Observation(version, snap.commit)
    finally:
        registry.close()


def watch(poll: Callable[[bool], Observation], *, interval: float,
          max_backoff: float = DEFAULT_MAX_BACKOFF,
          sleep: Callable[[float], None] = time.sleep) -> Iterator[Event]:
    """Poll forever; yield the first observation as a ``first`` :class:`Change`, then
    every move of the tag, every failure to reach the remote and every recovery.

    ``poll(first)`` reads the tag; its errors other than :class:`RemoteError` propagate
    (not a registry; a model missing at the first poll).
    """
    current: Observation | None = None
    failures, delay = 0, interval
    while True:
        try:
            seen = poll(current is None)
        except RemoteError as exc:
            failures += 1
            delay = min(max(max_backoff, interval), interval * 2 ** failures)
            yield Unreachable(exc, delay)
            sleep(delay)
            continue
        if failures:
            yield Recovered(failures)
            failures, delay = 0, interval
        if current is None:
            yield Change(None, seen.version, seen.commit, first=True)
        elif seen.version != current.version:
            yield Change(current.version, seen.version, seen.commit)
        current = seen
        sleep(interval)


def parse_command(command: str) -> list[str]:
    """CMD split into argv the way a POSIX shell would (:func:`shlex.split`), never run
    through a shell: ``sh -c '...'`` is how to ask for one."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise InvalidValueError(f"--exec {command!r} cannot be split into words ({exc})") from None
    if not argv:
        raise InvalidValueError("--exec needs a command")
    return argv


def command_env(ref: Reference, change: Change, repo: str | None) -> dict[str, str]:
    """The variables CMD gets on top of the watcher's environment."""
    env = {
        "MODELBOX_MODEL": str(ref.model),
        "MODELBOX_TAG": ref.tag or "",
        "MODELBOX_REF": str(ref),
        "MODELBOX_VERSION": change.after or "",
        "MODELBOX_PREVIOUS_VERSION": change.before or "",
        "MODELBOX_COMMIT": change.commit or "",
    }
    if repo is not None:
        env["MODELBOX_REPO"] = repo
    return env


def run_command(argv: list[str], env: dict[str, str]) -> int:
    """Run CMD to its end; its exit code (127 when it cannot be started, as a shell says)."""
    try:
        return subprocess.run(argv, env={**os.environ, **env}, check=False).returncode
    except OSError:
        return 127
