"""A hostile registry in Chromium: descriptions, owners, tasks, metadata keys and values
carrying HTML and JavaScript, tag names the API refuses committed straight into the
manifests, and a 10 MB description. Each payload sets a global or opens an alert if a page
ever runs it (``harness.payloads``); the tests assert none ran, that the strings read as
text, and that the page logged no console error (a broken ``<img onerror>`` would)."""

from __future__ import annotations

from pathlib import Path

import pytest

from browser.conftest import Servers
from browser.harness import Page, lacks, payloads
from browser.registries import hostile

NO_UI = lacks("ui")
pytestmark = [pytest.mark.browser, pytest.mark.skipif(bool(NO_UI), reason=str(NO_UI))]


def test_no_string_from_a_hostile_registry_runs_as_a_script(page: Page, servers: Servers,
                                                            tmp_path: Path) -> None:
    registry, where = hostile(tmp_path / "registry")
    served = servers.ui(registry)
    page.open(served.url)
    page.assert_no_script_ran()
    page.screenshot("index")
    page.follow("xss")
    page.assert_no_script_ran()
    text = page.text()
    assert "<script>window.__modelbox_pwned=1</script>" in text  # shown as text
    page.screenshot("model")
    page.follow(where["version"], exact=True)
    page.assert_no_script_ran()
    text = page.text()
    for payload in payloads():
        assert payload in text, payload  # the metadata keys and values, as text
    page.screenshot("version")


def test_a_10_mb_description_renders_safely(page: Page, servers: Servers,
                                            tmp_path: Path) -> None:
    registry, where = hostile(tmp_path / "registry")
    served = servers.ui(registry)
    page.open(served.url)
    page.follow("xss")
    page.follow(where["big"], exact=True)
    page.assert_no_script_ran()
    size = page.js("return document.documentElement.outerHTML.length")
    assert size < 11 * 1024 * 1024, size
    page.screenshot("big")
