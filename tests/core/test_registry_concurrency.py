"""Two OS processes writing to one clone at once: both succeed, neither update is lost."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from core_helpers import assert_clean, git_code, git_out

from modelbox.check import check
from modelbox.names import parse_model
from modelbox.registry import Registry

if TYPE_CHECKING:
    from conftest import Run

# Each writer waits for a start file so that both really run at the same time.
WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path

    from modelbox import ModelBoxClient
    from modelbox.cli import main

    repo, prefix, mode, go = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
    while not go.exists():
        time.sleep(0.005)
    if mode == "cli":
        for i in range(10):
            for argv in (["version", "create", "m", f"{prefix}{i}"],
                         ["tag", f"m@{prefix}{i}", f"{prefix}-newest"]):
                code = main(["--repo", repo, *argv])
                if code:
                    sys.exit(code)
    else:
        client = ModelBoxClient(repo)
        model = client.model("m")
        for i in range(10):
            model.new_model_version(f"{prefix}{i}", metadata={"i": i})
        client.close()
    """
)


@pytest.mark.parametrize("mode", ["cli", "api"])
def test_two_processes_creating_versions_at_once_lose_nothing(
    registry_path: Path, run: Run, tmp_path: Path, mode: str
) -> None:
    assert run("--repo", registry_path, "model", "create", "m").code == 0
    go = tmp_path / "go"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(registry_path), prefix, mode, str(go)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for prefix in ("a", "b")
    ]
    time.sleep(0.5)  # let both import modelbox and wait at the start line
    go.touch()
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err

    expected = sorted(f"{p}{i}" for p in "ab" for i in range(10))
    with closing(Registry.open(registry_path)) as registry:
        model = parse_model("m")
        assert sorted(v.version for v in registry.list_versions(model)) == expected
        assert check(registry) == []
        creates = [e for e in registry.log("default/m") if e.operation == "version.create"]
        assert sorted(e.target for e in creates) == [f"default/m@{v}" for v in expected]
        if mode == "cli":
            assert registry.tags(model) == {"a-newest": "a9", "b-newest": "b9"}
    subjects = git_out(registry_path, "log", "--format=%s").splitlines()
    assert len([s for s in subjects if s.startswith("version create")]) == 20
    assert len(subjects) == 2 + 20 + (20 if mode == "cli" else 0)
    assert git_out(registry_path, "rev-list", "--count", "--merges", "HEAD") == "0\n"
    assert_clean(registry_path)
    assert git_code(registry_path, "fsck", "--strict", "--no-dangling") == 0


def test_a_writer_waiting_too_long_for_the_lock_fails_cleanly(
    registry_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelbox.refs import locked

    assert run("--repo", registry_path, "model", "create", "m").code == 0
    head = git_out(registry_path, "rev-parse", "HEAD")
    monkeypatch.setenv("MODELBOX_LOCK_TIMEOUT", "0.2")
    with closing(Registry.open(registry_path)) as holder, locked(holder.repo.git_dir):
        result = run("--repo", registry_path, "version", "create", "m", "v1")
    assert result.code == 1
    assert "another modelbox process" in result.err
    assert git_out(registry_path, "rev-parse", "HEAD") == head
    assert_clean(registry_path)
