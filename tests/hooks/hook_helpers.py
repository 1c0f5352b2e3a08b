"""Helpers the hook tests share: registries made with modelbox, hand edits, this project as a
hook repository pre-commit can install."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import pytest

if TYPE_CHECKING:
    from conftest import Run

PROJECT = Path(__file__).resolve().parents[2]
HOOK_IDS = ("modelbox-validate", "modelbox-format", "modelbox-no-raw-artifacts")
MODEL = "ai/vision/yolo"
MODEL_DIR = f"models/{MODEL}"
V1 = f"{MODEL_DIR}/_versions/v1"
V2 = f"{MODEL_DIR}/_versions/v2"
TAGS = f"{MODEL_DIR}/_tags.json"
POINTER = f"{V2}/_artifacts/model.pt.json"
IDENTITY = {
    "GIT_AUTHOR_NAME": "Hook Test", "GIT_AUTHOR_EMAIL": "hooks@example.com",
    "GIT_COMMITTER_NAME": "Hook Test", "GIT_COMMITTER_EMAIL": "hooks@example.com",
}


class HookRepo(NamedTuple):
    path: Path
    rev: str


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          check=False, env=env)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


@contextlib.contextmanager
def built_once(tmp_path_factory: pytest.TempPathFactory,
               name: str) -> Iterator[tuple[Path, bool]]:
    """A folder ``name`` that every pytest-xdist worker of this run shares (one process: in
    its own basetemp), under an exclusive lock: yields it and whether this caller must build
    it (True for the first), and marks it built when that block ends without an error."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # pytest-N/, the parent of each worker's pytest-N/popen-gwK/
    folder, done = root / name, root / f"{name}.built"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            yield folder, False
            return
        shutil.rmtree(folder, ignore_errors=True)  # what a failed build left
        folder.mkdir()
        yield folder, True
        done.touch()


def snapshot_project(target: Path) -> HookRepo:
    """Commit this project's work tree (tracked and untracked files, minus what .gitignore
    ignores) into a new repository at ``target``: pre-commit installs hooks from commits."""
    env = {**os.environ, **IDENTITY, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    listed = git(PROJECT, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in sorted(set(filter(None, listed.split("\0")))):
        source, copy = PROJECT / name, target / name
        if not os.path.lexists(source):
            continue  # deleted in the work tree, not yet in git
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            copy.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, copy)
    git(target, "init", "-q", env=env)
    git(target, "add", "-A", env=env)
    git(target, "commit", "-qm", "snapshot of the work tree for the hook tests", env=env)
    return HookRepo(target, git(target, "rev-parse", "HEAD", env=env).strip())


def write_config(path: Path, repo: HookRepo, **args: list[str]) -> Path:
    """A ``.pre-commit-config.yaml`` with every hook of ``repo`` (JSON is valid YAML);
    ``args`` by hook id with ``_`` for ``-`` (``modelbox_no_raw_artifacts=[...]``)."""
    hooks = []
    for hook in HOOK_IDS:
        extra = args.get(hook.replace("-", "_"))
        hooks.append({"id": hook, **({"args": extra} if extra else {})})
    config = {"repos": [{"repo": str(repo.path), "rev": repo.rev, "hooks": hooks}]}
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path


def make_registry(path: Path, run: Run) -> Path:
    """A valid registry made with the modelbox CLI: two models, versions, unique tags
    (production releases v1), metrics, artifact pointers, tag refs in sync."""
    weights = path.parent / "model.pt"
    weights.write_bytes(b"\x80\x02weights" * 100)
    repo = ("--repo", str(path))
    for argv in (
        ("init", str(path)),
        (*repo, "model", "create", MODEL, "--owner", "ml@example.com"),
        (*repo, "version", "create", MODEL, "v1"),
        (*repo, "artifact", "add", f"{MODEL}@v1", str(weights)),  # production needs artifacts
        (*repo, "tag", f"{MODEL}@v1", "production"),
        (*repo, "version", "create", MODEL, "v2", "--tag", "staging"),
        (*repo, "artifact", "add", f"{MODEL}@v2", str(weights)),
        (*repo, "metrics", "log", f"{MODEL}@v2", "acc=0.91", "--step", "3"),
        (*repo, "model", "create", "ai/nlp/bert"),
        (*repo, "version", "create", "ai/nlp/bert", "v1"),
    ):
        result = run(*argv)
        assert result.code == 0, (argv, result)
    return path


def commit(repo: Path, message: str = "hand edit") -> None:
    """Stage everything and commit with plain git, the way a hand edit lands."""
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


def edit(repo: Path, path: str, change: dict[str, object] | None = None, *,
         text: str | bytes | None = None) -> None:
    """Rewrite a file: merge ``change`` into its JSON (a None value deletes the key), or
    write ``text`` as it is."""
    file = repo / path
    file.parent.mkdir(parents=True, exist_ok=True)
    if text is None:
        document = json.loads(file.read_text(encoding="utf-8")) if file.exists() else {}
        for key, value in (change or {}).items():
            if value is None:
                document.pop(key, None)
            else:
                document[key] = value
        text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    file.write_bytes(text.encode() if isinstance(text, str) else text)


@pytest.fixture(scope="session")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> HookRepo:
    """This project as a hook repository, one for the run (pytest-xdist workers share it)."""
    with built_once(tmp_path_factory, "hook-repo") as (path, build):
        if build:
            return snapshot_project(path)
        return HookRepo(path, git(path, "rev-parse", "HEAD").strip())


@pytest.fixture(scope="session")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory, hook_repo: HookRepo) -> Path:
    """A pre-commit store holding the hooks' environment, built once for the run (the
    pytest-xdist workers share it, as pre-commit's users share ~/.cache/pre-commit)."""
    with built_once(tmp_path_factory, "pre-commit-home") as (home, build):
        if build:
            config = write_config(home / "config.yaml", hook_repo)
            scratch = tmp_path_factory.mktemp("pre-commit-install")
            env = {**os.environ, "PRE_COMMIT_HOME": str(home)}
            git(scratch, "init", "-q", env=env)
            proc = subprocess.run(
                [sys.executable, "-m", "pre_commit", "install-hooks", "-c", str(config)],
                cwd=scratch, capture_output=True, text=True, check=False, env=env,
                timeout=900,
            )
            if proc.returncode != 0:
                pytest.fail("pre-commit could not install the hooks:\n"
                            f"{proc.stdout}{proc.stderr}", pytrace=False)
    return home
