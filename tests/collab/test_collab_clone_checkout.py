"""A clone's work tree is written by git with one worker per core, unless the user's own
``checkout.workers`` says otherwise, and is the commit's tree either way."""

from __future__ import annotations

import os
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from collab.collab_helpers import assert_clean, git_out, ok
from modelbox.names import parse_model
from modelbox.refs.gitcli import git_program
from modelbox.registry import Registry

if TYPE_CHECKING:
    from conftest import Run

pytestmark = pytest.mark.skipif(git_program() is None, reason="the checkout is git's")


@pytest.fixture
def remote(tmp_path: Path, registry_path: Path) -> Path:
    """A bare remote holding a registry of more files than git's threshold (100) for
    writing them in parallel."""
    with closing(Registry.open(registry_path)) as reg:
        model = parse_model("team/many")
        reg.create_model(model)
        with reg.batch():
            for i in range(120):
                reg.create_version(model, f"v{i}")
    bare = tmp_path / "remote.git"
    git_out(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git_out(registry_path, "push", "-q", str(bare), "main")
    return bare


def workers_started(trace: Path) -> int:
    """How many parallel checkout workers git started, from its trace2 event log."""
    return sum('"checkout--worker"' in line and '"child_start"' in line
               for line in trace.read_text().splitlines())


@pytest.mark.parametrize("user_setting", [None, "1"])
def test_the_work_tree_is_written_by_a_worker_per_core_unless_the_user_says(
    remote: Path, tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch,
    user_setting: str | None,
) -> None:
    if (os.cpu_count() or 1) < 2 and user_setting is None:
        pytest.skip("one core: git writes the files with one worker whatever it is told")
    config = tmp_path / "user.gitconfig"
    config.write_text("" if user_setting is None else f"[checkout]\n\tworkers = {user_setting}\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    trace = tmp_path / "trace.json"
    monkeypatch.setenv("GIT_TRACE2_EVENT", str(trace))
    clone = tmp_path / "clone"
    ok(run, "clone", remote, clone)
    files = git_out(clone, "ls-tree", "-r", "--name-only", "HEAD").split()
    assert len(files) > 100
    assert_clean(clone)  # every file written, as the commit has it
    assert sorted(str(p.relative_to(clone)) for p in clone.rglob("*")
                  if p.is_file() and ".git" not in p.relative_to(clone).parts) == sorted(files)
    started = workers_started(trace)
    assert started > 0 if user_setting is None else started == 0
