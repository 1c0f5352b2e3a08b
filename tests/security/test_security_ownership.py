"""A registry another user owns is refused, as git refuses it (``safe.directory``).

Its settings and hooks are that user's: before this check, a ``version create`` in such a
registry ran its owner's ``pre-auto-gc`` hook as the caller (through the background
``git gc --auto``), since modelbox starts git with ``--git-dir``, which git 2.39 does not
check. Each test makes a real registry, hands it to another uid with ``chown`` (so they
need root, and are skipped without it), and runs the real ``modelbox`` command.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest
from hostile import assert_refused, fingerprint, modelbox

pytestmark = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="handing a folder to another user (chown) needs root")

STRANGER = 4242


def git(cwd: Path, *args: str) -> str:
    """The test's own git, which trusts every folder (it sets the registries up)."""
    proc = subprocess.run(["git", "-c", "safe.directory=*", *args], cwd=cwd,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, (args, proc.stderr)
    return proc.stdout.strip()


def hand_over(path: Path, uid: int = STRANGER) -> None:
    for folder, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.lchown(Path(folder, name), uid, uid)
    os.lchown(path, uid, uid)


@pytest.fixture(params=["git", "dulwich"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MODELBOX_GIT_TRANSPORT", str(request.param))
    return str(request.param)


@pytest.fixture
def theirs(tmp_path: Path) -> Path:
    """A registry with ns/m@v1 tagged prod, owned by another user."""
    reg = tmp_path / "theirs"
    reg.mkdir()
    for argv in (["init", "."], ["model", "create", "ns/m"],
                 ["version", "create", "ns/m", "v1", "--tag", "prod"]):
        assert modelbox(*argv, cwd=reg).code == 0
    hand_over(reg)
    return reg


def trust(value: str) -> None:
    """Add ``value`` to the test's global git settings (GIT_CONFIG_GLOBAL)."""
    subprocess.run(["git", "config", "--global", "--add", "safe.directory", value],
                   check=True)


def test_the_owner_s_hook_never_runs(tmp_path: Path) -> None:
    """The attack: a registry whose git gc is due (gc.auto=1, loose objects where git
    counts them) and whose pre-auto-gc hook writes a file. Without the check, the caller's
    version create started the maintenance, and the hook ran as the caller."""
    reg = tmp_path / "theirs"
    reg.mkdir()
    for argv in (["init", "."], ["model", "create", "ns/m"]):
        assert modelbox(*argv, cwd=reg).code == 0
    marker = tmp_path / "ran"
    hook = reg / ".git" / "hooks" / "pre-auto-gc"
    hook.write_text(f"#!/bin/sh\nid -u > {marker}\nexit 1\n")
    hook.chmod(0o755)
    git(reg, "config", "gc.auto", "1")
    made, i = 0, 0
    while made < 3:  # loose objects in objects/17, the folder git's estimate counts
        i += 1
        data = f"junk {i}\n".encode()
        if hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest().startswith("17"):
            subprocess.run(["git", "-c", "safe.directory=*", "hash-object", "-w", "--stdin"],
                           input=data, cwd=reg, capture_output=True, check=True)
            made += 1
    assert len(list((reg / ".git" / "objects" / "17").iterdir())) >= 3
    hand_over(reg)
    before = fingerprint(reg)
    result = modelbox("version", "create", "ns/m", "v1", cwd=reg,
                      env={"MODELBOX_MAINTENANCE_QUIET": "0.1"})
    deadline = time.monotonic() + 5  # without the check the hook ran within ~1 s
    while time.monotonic() < deadline and not marker.exists():
        time.sleep(0.2)
    assert not marker.exists(), f"the owner's hook ran as uid {marker.read_text()}"
    assert_refused(result.code, result.err, "owned by another user", "safe.directory")
    assert fingerprint(reg) == before


@pytest.mark.parametrize("argv", [
    ["resolve", "ns/m:prod"],
    ["model", "list"],
    ["version", "create", "ns/m", "v2"],
    ["tag", "ns/m@v1", "staging"],
    ["check"],
])
def test_every_command_refuses_it(theirs: Path, transport: str, argv: list[str]) -> None:
    before = fingerprint(theirs)
    result = modelbox(*argv, cwd=theirs)
    assert_refused(result.code, result.err, "owned by another user (uid 4242)",
                   f"git config --global --add safe.directory {theirs}")
    assert fingerprint(theirs) == before


def test_its_own_settings_cannot_trust_it(theirs: Path, transport: str) -> None:
    """safe.directory counts only in settings its owner cannot write."""
    with (theirs / ".git" / "config").open("a") as config:
        config.write("[safe]\n\tdirectory = *\n")
    result = modelbox("resolve", "ns/m:prod", cwd=theirs)
    assert_refused(result.code, result.err, "owned by another user")


@pytest.mark.parametrize("values", [
    lambda reg: [str(reg)],
    lambda reg: ["*"],
    lambda reg: [f"{reg.parent}/*"],
    lambda reg: ["/elsewhere", str(reg.parent / "link")],  # a symlink to it
])
def test_safe_directory_trusts_it(theirs: Path, transport: str, values: object) -> None:
    (theirs.parent / "link").symlink_to(theirs)
    for value in values(theirs):  # type: ignore[operator]
        trust(value)
    result = modelbox("resolve", "ns/m:prod", cwd=theirs)
    assert result.code == 0, result
    assert result.out.strip() == "v1"
    assert modelbox("tag", "ns/m@v1", "staging", cwd=theirs).code == 0


@pytest.mark.parametrize("values", [
    lambda reg: [str(reg), ""],  # an empty value forgets the ones before it
    lambda reg: [f"{reg}/*"],  # below it, not it
    lambda reg: [str(reg.parent)],
    lambda reg: ["theirs"],  # relative: git takes none
])
def test_safe_directory_that_does_not_name_it(theirs: Path, transport: str,
                                              values: object) -> None:
    for value in values(theirs):  # type: ignore[operator]
        trust(value)
    result = modelbox("resolve", "ns/m:prod", cwd=theirs)
    assert_refused(result.code, result.err, "owned by another user")


def test_a_command_line_setting_trusts_it(theirs: Path, transport: str) -> None:
    env = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory",
           "GIT_CONFIG_VALUE_0": str(theirs)}
    assert modelbox("resolve", "ns/m:prod", cwd=theirs, env=env).code == 0


def test_root_may_work_in_the_folder_of_the_user_it_runs_sudo_for(
        theirs: Path, transport: str) -> None:
    assert modelbox("resolve", "ns/m:prod", cwd=theirs,
                    env={"SUDO_UID": str(STRANGER)}).code == 0
    result = modelbox("resolve", "ns/m:prod", cwd=theirs, env={"SUDO_UID": "4243"})
    assert_refused(result.code, result.err, "owned by another user")


def test_a_git_dir_owned_by_another_user_is_enough(tmp_path: Path, transport: str) -> None:
    """git checks the work tree's folder and the git dir each."""
    reg = tmp_path / "mine"
    reg.mkdir()
    for argv in (["init", "."], ["model", "create", "ns/m"]):
        assert modelbox(*argv, cwd=reg).code == 0
    hand_over(reg / ".git")
    result = modelbox("model", "list", cwd=reg)
    assert_refused(result.code, result.err, "owned by another user")
    hand_over(reg / ".git", 0)
    assert modelbox("model", "list", cwd=reg).code == 0


def test_init_in_their_folder_makes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "theirs"
    folder.mkdir()
    hand_over(folder)
    result = modelbox("init", ".", cwd=folder)
    assert_refused(result.code, result.err, "owned by another user")
    assert list(folder.iterdir()) == []
