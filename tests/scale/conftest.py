"""The index tests run twice: the index file read into memory, as a small one is, and
mapped, as one past ``_MAP_FROM`` (1 MiB, ~6,000 entries) is; the test repositories are
small, so the second way is forced."""

from __future__ import annotations

import pytest

from modelbox.refs import index


@pytest.fixture(params=["read", "mapped"])
def index_access(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "mapped":
        monkeypatch.setattr(index, "_MAP_FROM", 0)
    return str(request.param)
