"""What every git child modelbox starts sees, and the switch that chooses git or dulwich.

Kept apart from :mod:`modelbox.refs.gitcli` so that the quickest read
(:mod:`modelbox.refs.catfile`) starts git the same way without loading the transfer code.
"""

from __future__ import annotations

import os

__all__ = ["SWITCH", "environment"]

SWITCH = "MODELBOX_GIT_TRANSPORT"
# What locates a repository: the caller names the repository with --git-dir, and a hook
# that runs modelbox must not point git at the repository that runs the hook.
_REPOSITORY_VARIABLES = (
    "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_PREFIX",
    "GIT_IMPLICIT_WORK_TREE", "GIT_GRAFT_FILE", "GIT_SHALLOW_FILE", "GIT_NAMESPACE",
    "GIT_QUARANTINE_PATH",
)


def environment(*, batch_ssh: bool) -> dict[str, str]:
    """os.environ for a git child: no repository variables, no prompts, C messages, and
    no replace refs: git reads objects as they are, as dulwich does (a ``refs/replace/``
    ref would otherwise show git's reads another tree or file than modelbox's own)."""
    env = {k: v for k, v in os.environ.items() if k not in _REPOSITORY_VARIABLES}
    env["GIT_NO_REPLACE_OBJECTS"] = "1"
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["LC_ALL"] = env["LANGUAGE"] = "C"  # the messages remote_error() reads
    if batch_ssh and "GIT_SSH_COMMAND" not in env and "GIT_SSH" not in env:
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    return env
