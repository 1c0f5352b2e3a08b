"""``modelbox install-hooks``: plain ``git push`` / ``git pull`` keep modelbox's guarantees."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from review_helpers import MODEL, git_out, git_run, make_registry, ok, one_error_line

from modelbox.objects import default_cache_dir, open_store

if TYPE_CHECKING:
    from conftest import Run


def _with_remote(tmp_path: Path, run: Run) -> tuple[Path, Path]:
    reg = make_registry(run, tmp_path / "reg")
    bare = tmp_path / "remote.git"
    git_out(tmp_path, "init", "-q", "--bare", str(bare))
    git_out(reg, "remote", "add", "origin", str(bare))
    ok(run, "--repo", reg, "install-hooks")
    return reg, bare


def _add_weights(run: Run, reg: Path, tmp_path: Path, content: bytes) -> str:
    weights = tmp_path / "model.pt"
    weights.write_bytes(content)
    ok(run, "--repo", reg, "artifact", "add", f"{MODEL}@v3", weights)
    return hashlib.sha256(content).hexdigest()


def test_git_push_places_the_objects_in_the_remote_store_first(
    tmp_path: Path, run: Run
) -> None:
    reg, bare = _with_remote(tmp_path, run)
    digest = _add_weights(run, reg, tmp_path, b"weights v3")
    remote_store = open_store(str(bare / "modelbox" / "store"))
    assert remote_store.missing([digest]) == {digest}

    push = git_run(reg, "push", "origin", "main")

    assert push.returncode == 0, push.stderr
    assert remote_store.missing([digest]) == set()
    # the weights of make_registry's v1 and v3, and the new ones
    assert "3 object(s) placed" in push.stderr
    assert git_out(bare, "rev-parse", "main") == git_out(reg, "rev-parse", "main")


def test_git_push_is_refused_when_an_object_cannot_reach_the_store(
    tmp_path: Path, run: Run
) -> None:
    reg, bare = _with_remote(tmp_path, run)
    assert git_run(reg, "push", "origin", "main").returncode == 0
    digest = _add_weights(run, reg, tmp_path, b"weights that get lost")
    for store in (reg / ".git" / "modelbox" / "store", default_cache_dir() / "objects"):
        lost = Path(open_store(str(store)).key(digest))
        if lost.exists():
            lost.unlink()
    before = git_out(bare, "rev-parse", "main")

    push = git_run(reg, "push", "origin", "main")

    assert push.returncode != 0
    assert "modelbox pre-push:" in push.stderr and "the push was stopped" in push.stderr
    assert git_out(bare, "rev-parse", "main") == before


def test_git_pull_syncs_the_tag_refs_through_post_merge(tmp_path: Path, run: Run) -> None:
    reg, bare = _with_remote(tmp_path, run)
    assert git_run(reg, "push", "origin", "main").returncode == 0
    other = tmp_path / "other"
    git_out(tmp_path, "clone", "-q", str(bare), str(other))
    ok(run, "--repo", other, "install-hooks")
    ok(run, "--repo", other, "refs", "sync")
    ok(run, "--repo", reg, "tag", f"{MODEL}@v3", "production")
    assert git_run(reg, "push", "origin", "main").returncode == 0

    pull = git_run(other, "pull", "-q", "--ff-only")

    assert pull.returncode == 0, pull.stderr
    subject = git_out(other, "for-each-ref", "--format=%(contents:subject)",
                      f"refs/modelbox/tags/{MODEL}/production")
    assert subject == f"{MODEL}@v3\n"
    assert ok(run, "--repo", other, "check").code == 0


def test_an_existing_user_hook_is_chained_and_kept(tmp_path: Path, run: Run) -> None:
    reg = make_registry(run, tmp_path / "reg")
    bare = tmp_path / "remote.git"
    git_out(tmp_path, "init", "-q", "--bare", str(bare))
    git_out(reg, "remote", "add", "origin", str(bare))
    hook = reg / ".git" / "hooks" / "pre-push"
    seen = tmp_path / "user-hook-saw"
    hook.write_text(f"#!/bin/sh\necho \"$1\" > '{seen}'\ncat >> '{seen}'\n")
    hook.chmod(0o755)

    result = ok(run, "--repo", reg, "install-hooks")

    assert f"chained {hook}" in result.out
    assert (hook.parent / "pre-push.local").read_text().startswith("#!/bin/sh\necho")
    assert git_run(reg, "push", "origin", "main").returncode == 0
    lines = seen.read_text().splitlines()
    assert lines[0] == "origin" and lines[1].startswith("refs/heads/main ")
    # Again: modelbox's own hooks are simply rewritten; the user's hook stays chained.
    assert f"updated {hook}" in ok(run, "--repo", reg, "install-hooks").out
    assert (hook.parent / "pre-push.local").exists()


def test_a_user_hook_that_cannot_be_chained_needs_force(tmp_path: Path, run: Run) -> None:
    reg = make_registry(run, tmp_path / "reg")
    hooks = reg / ".git" / "hooks"
    for name in ("post-merge", "post-merge.local"):
        (hooks / name).write_text("#!/bin/sh\nexit 0\n")
        os.chmod(hooks / name, 0o755)

    one_error_line(run("--repo", reg, "install-hooks"), "post-merge", "--force")
    assert not (hooks / "pre-push").exists()  # nothing was written

    result = ok(run, "--repo", reg, "install-hooks", "--force")
    assert f"replaced {hooks / 'post-merge'}" in result.out
    assert (hooks / "post-merge.local").read_text() == "#!/bin/sh\nexit 0\n"
    assert "modelbox-git-refs-sync" in (hooks / "post-merge").read_text()
