"""Fixtures of the collaboration tests: real Git servers (see collab_servers.py), and the
two implementations of the transfers (the git program, dulwich)."""

from __future__ import annotations

import pytest

from collab.collab_servers import bare_remote, git_servers

__all__ = ["bare_remote", "git_servers", "git_transport"]


@pytest.fixture(params=["git", "dulwich"])
def git_transport(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, isolated_env: None
) -> str:
    """Run the test once with the git program doing the transfers, once with dulwich
    (after ``isolated_env``, which clears every MODELBOX_ variable)."""
    choice = str(request.param)
    monkeypatch.setenv("MODELBOX_GIT_TRANSPORT", choice)
    return choice
