"""A site built by ``modelbox site build`` and served by a plain ``http.server`` (what a
Pages host does) reads like ``modelbox ui``: the same links on the same pages, from the root
of the host or from a sub-path (relative links)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from browser.conftest import Servers
from browser.harness import MODELBOX, Page, lacks
from browser.registries import demo

NO_SITE = lacks("ui") or lacks("site", "build")
pytestmark = [pytest.mark.browser, pytest.mark.skipif(bool(NO_SITE), reason=str(NO_SITE))]


def _build(registry: Path, out: Path) -> None:
    proc = subprocess.run([MODELBOX, "site", "build", str(out)], cwd=registry,
                          capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr


def _walk(page: Page, url: str) -> list[tuple[str, list[str]]]:
    """Index -> vision -> vision/yolo -> v1 by clicking; each page's title and links."""
    seen = []
    page.open(url)
    for text, testid in (("vision", "ns-link"), ("vision/yolo", "model-link"),
                         ("v1", "version-link"), ("", "")):
        links = sorted(text for text, _ in page.links() if text)
        seen.append((page.driver.title, links))
        if text:
            page.follow(text, exact=True, testid=testid)
    return seen


def test_a_built_site_reads_like_modelbox_ui(page: Page, servers: Servers,
                                             tmp_path: Path) -> None:
    registry = demo(tmp_path / "registry")
    live = _walk(page, servers.ui(registry).url)
    _build(registry, tmp_path / "site")
    static = _walk(page, servers.static(tmp_path / "site").url)
    assert "yolo run 1" in page.text()
    page.screenshot("static-version")
    assert [title for title, _ in static] == [title for title, _ in live]
    for (title, ours), (_, theirs) in zip(static, live, strict=True):
        assert ours == theirs, title


def test_a_built_site_works_under_a_sub_path(page: Page, servers: Servers,
                                             tmp_path: Path) -> None:
    registry = demo(tmp_path / "registry")
    _build(registry, tmp_path / "host" / "team" / "registry")
    served = servers.static(tmp_path / "host")
    walked = _walk(page, served.url + "team/registry/")
    assert len(walked) == 4
    assert page.url.startswith(served.url + "team/registry/")
    assert "yolo run 1" in page.text()
