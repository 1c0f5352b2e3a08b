"""A hostile registry in Chromium: descriptions, owners, tasks, metadata keys and values
carrying HTML and JavaScript, tag names the API refuses committed straight into the
manifests, and a 10 MB description. Each payload sets a global or opens an alert if a page
ever runs it (``harness.payloads``); the tests assert none ran, that the strings read as
text, and that no page logged a console error (a broken ``<img onerror>`` would)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from browser.conftest import isolated
from browser.harness import Page, Served, lacks, payloads, serve_ui
from browser.registries import hostile

NO_UI = lacks("ui")
pytestmark = [pytest.mark.browser, pytest.mark.skipif(bool(NO_UI), reason=str(NO_UI))]


@pytest.fixture(scope="module")
def evil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, dict[str, str]]]:
    root = tmp_path_factory.mktemp("hostile-ui")
    with isolated(root / "home"):
        registry, where = hostile(root / "registry")
        served = serve_ui(registry, root)
    try:
        yield served, where
    finally:
        served.stop()


# Elements the payloads would create if a page took them as markup.
INJECTED = ("return [...document.querySelectorAll('img[src=x], svg[onload], iframe[srcdoc], "
            "script:not([src]):not([type=\"application/json\"])')].map(e => e.outerHTML)")


def _to(page: Page, served: Served, model: str) -> None:
    page.open(served.url)
    page.assert_no_script_ran()
    page.follow(model.partition("/")[0], exact=True, testid="ns-link")
    page.assert_no_script_ran()
    page.follow(model, exact=True, testid="model-link")
    page.assert_no_script_ran()


def test_strings_the_api_accepts_read_as_text_and_never_run(
        page: Page, evil: tuple[Served, dict[str, str]]) -> None:
    served, where = evil
    _to(page, served, where["model"])
    text = page.text()
    for payload in payloads():
        assert payload in text, payload  # description, metadata keys and values, as text
    page.screenshot("model")
    page.follow(where["version"], exact=True, testid="version-link")
    page.assert_no_script_ran()
    text = page.text()
    for payload in payloads():
        assert payload in text, payload
    page.screenshot("version")


def test_tag_names_from_a_hostile_push_never_run(page: Page,
                                                 evil: tuple[Served, dict[str, str]]) -> None:
    served, where = evil
    _to(page, served, where["tags"])
    page.screenshot("tags")
    # Shown as text or left out (the broken tag map reads as no tags), never as elements.
    assert page.js(INJECTED) == [], page.js(INJECTED)
    for suffix in (".json", ".html"):  # the JSON twin too: a browser shows it, never runs it
        page.open(page.url.rsplit(".", 1)[0] + suffix)
        page.assert_no_script_ran()


def test_a_10_mb_description_renders_safely(page: Page,
                                            evil: tuple[Served, dict[str, str]]) -> None:
    served, where = evil
    _to(page, served, where["model"])
    page.follow(where["big"], exact=True, testid="version-link")
    page.assert_no_script_ran()
    size = page.js("return document.documentElement.outerHTML.length")
    assert size < 1024 * 1024, f"the version page is {size:,} characters"
    page.screenshot("big")
