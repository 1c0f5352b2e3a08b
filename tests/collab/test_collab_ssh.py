"""ssh remotes (``ssh://host/path`` and scp-style ``host:path``), through both transports.

No sshd: the ssh command (``GIT_SSH_COMMAND``, as a user would set it) is a stand-in that
runs the remote command on this machine, as sshd would on the host, and notes the host it
was asked for. Everything else (URL parsing, the protocol over the pipe, the shallow and
whole clones, push) is the real git and the real dulwich.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from collab.collab_helpers import assert_clean, git_out, make_registry, ok, tag_refs
from collab.collab_servers import BareRemote

if TYPE_CHECKING:
    from conftest import Run

YOLO = "ai/vision/yolo"
HOST = "registry.example"
pytestmark = pytest.mark.usefixtures("git_transport")

FAKE_SSH = """#!{python}
import os, sys
args = sys.argv[1:]
with_value = {{"-o", "-p", "-i", "-l", "-F", "-E", "-c", "-m", "-b", "-J"}}
i = 0
while i < len(args) and args[i].startswith("-"):
    i += 2 if args[i] in with_value else 1
host, command = args[i], " ".join(args[i + 1:])
with open(os.environ["FAKE_SSH_LOG"], "a") as log:
    log.write(host + "\\n")
os.execvp("sh", ["sh", "-c", command])
"""


@pytest.fixture
def ssh_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Route ssh to the stand-in; return the file where it notes each host it served."""
    program = tmp_path / "bin" / "fake-ssh"
    program.parent.mkdir()
    program.write_text(FAKE_SSH.format(python=sys.executable))
    program.chmod(0o755)
    log = tmp_path / "ssh.log"
    monkeypatch.setenv("GIT_SSH_COMMAND", str(program))
    monkeypatch.setenv("FAKE_SSH_LOG", str(log))
    return log


@pytest.mark.parametrize("form", ["ssh://", "scp"])
def test_push_clone_and_pull_over_ssh(
    form: str, bare_remote: BareRemote, tmp_path: Path, run: Run, ssh_log: Path
) -> None:
    path = bare_remote.path
    url = f"ssh://{HOST}{path}" if form == "ssh://" else f"{HOST}:{path}"
    first = make_registry(run, tmp_path / "first", url)
    ok(run, "--repo", first, "push")
    assert git_out(path, "rev-parse", "main") == git_out(first, "rev-parse", "main")
    assert tag_refs(path) == tag_refs(first) != ""

    second = tmp_path / "second"
    ok(run, "clone", url, second)
    assert_clean(second)
    assert git_out(second, "rev-parse", "--is-shallow-repository") == "false\n"
    assert tag_refs(second) == tag_refs(first)
    ok(run, "--repo", second, "tag", f"{YOLO}@v2", "prod")
    ok(run, "--repo", second, "push")

    assert "fast-forward" in ok(run, "--repo", first, "pull").out
    assert ok(run, "--repo", first, "resolve", f"{YOLO}:prod").out == "v2\n"
    assert tag_refs(first) == tag_refs(second) == tag_refs(path)
    assert set(ssh_log.read_text().split()) == {HOST}


def test_an_ssh_remote_that_refuses_is_one_line(
    tmp_path: Path, run: Run, ssh_log: Path
) -> None:
    first = make_registry(run, tmp_path / "first", f"{HOST}:/no/such/registry.git")
    result = run("--repo", first, "push")
    assert result.code == 1
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
    assert set(ssh_log.read_text().split()) == {HOST}
