"""Fixtures every test shares: an isolated environment, a fresh registry, CLI and git runners.

Every test runs with its own HOME, Git identity and config, cache directories and working
directory, and with no ``AWS_*`` / ``FSSPEC_*`` variable, so no test can read the user's
configuration or reach a real cloud.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple, Protocol

import pytest
from s3server import S3Server, running_s3_server

from modelbox.cli import main
from modelbox.registry import Registry

# A suite started as a background job of a script (`pytest &` where job control is off, as
# in a CI runner) inherits SIGINT ignored, and so does every child a test starts: the
# Ctrl-C tests then find their child deaf to Ctrl-C, a failure of the launch, not of
# modelbox. Run as from a terminal, where Ctrl-C reaches a program.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

IDENTITY_NAME = "Test User"
IDENTITY_EMAIL = "test@example.com"


class Result(NamedTuple):
    """What one in-process CLI run returned: exit code, stdout and stderr."""

    code: int
    out: str
    err: str


class Run(Protocol):
    def __call__(self, *argv: str | Path) -> Result: ...


class Git(Protocol):
    def __call__(self, *args: str | Path, cwd: Path | None = None) -> str: ...


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(
        f"[user]\n\tname = {IDENTITY_NAME}\n\temail = {IDENTITY_EMAIL}\n"
        "[init]\n\tdefaultBranch = main\n",
        encoding="utf-8",
    )
    for name in list(os.environ):
        if name.startswith(("AWS_", "FSSPEC_", "GIT_", "MODELBOX_")):
            monkeypatch.delenv(name)
    # No AWS profile, config file or instance metadata can leak in either.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", IDENTITY_NAME)
        monkeypatch.setenv(f"GIT_{role}_EMAIL", IDENTITY_EMAIL)
    monkeypatch.setenv("MODELBOX_CACHE_DIR", str(tmp_path / "cache" / "modelbox"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def leaves_the_process_as_found() -> Iterator[None]:
    """What every child a worker starts inherits stays as the test found it: Ctrl-C, the
    signal mask and the nice value (an in-process command that reniced its caller once sent
    every later child of that worker to nice 19). SIGTERM is left out: the metrics buffer
    hooks it for the whole process by design."""
    import threading

    def state() -> tuple[object, object, int]:
        return (signal.getsignal(signal.SIGINT),
                sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])),
                os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    handler = signal.getsignal(signal.SIGINT)
    before = state()
    yield
    after = state()
    if after != before:
        if handler is not None:
            signal.signal(signal.SIGINT, handler)
        with contextlib.suppress(OSError):  # lowering it back needs privilege
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), before[2])
        pytest.fail(f"the test changed the process's (Ctrl-C, signal mask, nice): "
                    f"{before} -> {after}")


@pytest.fixture
def registry_path(tmp_path: Path) -> Path:
    """A fresh registry (``modelbox init``), created through the library."""
    path = tmp_path / "registry"
    Registry.init(path).close()
    return path


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run the CLI in-process: ``run("model", "list")`` -> (code, stdout, stderr)."""

    def _run(*argv: str | Path) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return _run


@pytest.fixture
def git() -> Git:
    """Run the real ``git`` CLI (in ``cwd``, default the current directory); return stdout."""

    def _git(*args: str | Path, cwd: Path | None = None) -> str:
        proc = subprocess.run(
            ["git", *(str(a) for a in args)],
            cwd=cwd, capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise AssertionError(
                f"git {' '.join(map(str, args))} exited {proc.returncode}: {proc.stderr}"
            )
        return proc.stdout

    return _git


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One real S3 server (SeaweedFS on loopback) for the whole session."""
    with running_s3_server(tmp_path_factory.mktemp("s3server")) as server:
        yield server
