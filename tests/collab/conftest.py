"""Fixtures of the collaboration tests: real Git servers (see collab_servers.py)."""

from __future__ import annotations

from collab.collab_servers import bare_remote, git_servers

__all__ = ["bare_remote", "git_servers"]
