"""The git settings a process reads are parsed once and kept while their files are
unchanged (issue 15: a command asks a dozen times, a script publishing in a loop once per
write). A change by plain ``git config``, a hand edit in place, or a change to an included
file is seen by the very next read."""

from __future__ import annotations

import os
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

from modelbox.refs.repo import GitRepo

if TYPE_CHECKING:
    from conftest import Git


def test_a_setting_changed_by_git_config_is_seen_at_the_next_read(
        registry_path: Path, git: Git) -> None:
    with closing(GitRepo.open(registry_path)) as repo:
        assert repo.git_setting("gc", "auto") is None
        git("config", "gc.auto", "100", cwd=registry_path)
        assert repo.git_setting("gc", "auto") == "100"
        git("config", "gc.auto", "200", cwd=registry_path)  # the same size, a new file
        assert repo.git_setting("gc", "auto") == "200"
        assert repo.config_stack() is repo.config_stack()  # unchanged: parsed once


def test_a_user_config_edited_in_place_is_seen_at_the_next_read(registry_path: Path) -> None:
    user = Path(os.environ["GIT_CONFIG_GLOBAL"])
    with closing(GitRepo.open(registry_path)) as repo:
        with user.open("a", encoding="utf-8") as f:
            f.write("[gc]\n\tauto = 100\n")
        assert repo.git_setting("gc", "auto") == "100"
        text = user.read_text(encoding="utf-8")
        with user.open("r+", encoding="utf-8") as f:  # same inode, same size
            f.write(text.replace("auto = 100", "auto = 200"))
        os.utime(user, ns=(1, 1))  # even with its mtime set back: the ctime moved
        assert repo.git_setting("gc", "auto") == "200"


def test_a_setting_in_an_included_file_is_read_again_every_time(
        registry_path: Path, git: Git, tmp_path: Path) -> None:
    included = tmp_path / "included.gitconfig"
    included.write_text("[gc]\n\tauto = 100\n", encoding="utf-8")
    git("config", "include.path", str(included), cwd=registry_path)
    with closing(GitRepo.open(registry_path)) as repo:
        assert repo.git_setting("gc", "auto") == "100"
        included.write_text("[gc]\n\tauto = 200\n", encoding="utf-8")
        assert repo.git_setting("gc", "auto") == "200"
