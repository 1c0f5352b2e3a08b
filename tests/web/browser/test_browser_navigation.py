"""Reading the registry in Chromium through ``modelbox ui``: from the index to a namespace to
a model to a version by clicking and by keyboard alone, searching and filtering, the tag
timeline, the review page, a phone's width. Every page is screenshotted and any console
error fails the test (the ``page`` fixture). Links are found by their text, among those
carrying the pages' stable ``data-testid`` hooks (docs/web.md)."""

from __future__ import annotations

import pytest

from browser.harness import Page, Served, lacks
from browser.registries import REVIEW_BRANCH

NO_UI = lacks("ui")
pytestmark = [pytest.mark.browser, pytest.mark.skipif(bool(NO_UI), reason=str(NO_UI))]

PHONE = (375, 740)


def _open_ui(page: Page, served: Served) -> None:
    page.open(served.url)


def _to_model(page: Page, model: str = "vision/yolo") -> None:
    page.follow(model.partition("/")[0], exact=True, testid="ns-link")
    page.follow(model, exact=True, testid="model-link")


def _rows(page: Page, table: str) -> list[list[str]]:
    """The visible rows of the table ``#table``, cell texts."""
    rows: list[list[str]] = page.js(
        "return [...document.querySelectorAll('#' + arguments[0] + ' tbody tr')]"
        ".filter(r => !r.hidden).map(r => [...r.cells].map(c => c.innerText.trim()))", table)
    return rows


def test_clicking_from_the_index_to_a_model_to_a_version(page: Page, demo_ui: Served) -> None:
    _open_ui(page, demo_ui)
    namespaces = [text for text, _ in page.links()]
    assert "vision" in namespaces and "nlp" in namespaces  # models by namespace
    page.screenshot("index")
    page.follow("vision", exact=True, testid="ns-link")
    models = [row[0] for row in _rows(page, "models")]
    assert models == sorted(models) and {"vision/yolo", "vision/resnet"} <= set(models)
    page.screenshot("namespace")
    page.follow("vision/yolo", exact=True, testid="model-link")
    versions = [row[0] for row in _rows(page, "versions")]
    assert versions == ["v2", "v1", "v0"]  # newest first
    page.screenshot("model")
    page.follow("v1", exact=True, testid="version-link")
    text = page.text()
    assert "yolo run 1" in text  # the description
    assert "lr" in text and "epochs" in text  # metadata
    assert "pytorch" in text
    page.screenshot("version")
    page.follow("vision/yolo", exact=True, testid="model-link")  # and back up
    assert [row[0] for row in _rows(page, "versions")] == ["v2", "v1", "v0"]


def test_a_version_page_shows_its_artifacts_with_type_size_and_digest(
        page: Page, demo_ui: Served) -> None:
    _open_ui(page, demo_ui)
    _to_model(page, "vision/resnet")
    page.follow("v0", exact=True, testid="version-link")
    (path, kind, size, digest, _), = _rows(page, "artifacts")
    assert path.endswith("weights.bin")
    assert kind
    assert size and size[0].isdigit()
    assert digest == "b2191f2bda70411ff11484be1f0b202b873187c24314594384ff95f2138f92b1"


def test_the_tag_timeline_lists_every_move_with_who(page: Page, demo_ui: Served) -> None:
    _open_ui(page, demo_ui)
    _to_model(page)
    timeline = _rows(page, "timeline")
    moves = [(tag, before, after) for _, tag, before, after, *_ in timeline]
    staging = [m for m in moves if m[0] == "staging"]
    assert sorted(staging) == sorted([("staging", "-", "v0"), ("staging", "v0", "v1"),
                                      ("staging", "v1", "v2")]), moves
    assert ("champion", "-", "v0") in moves
    assert all("Test User" in row[4] for row in timeline), timeline
    page.screenshot("timeline")


def test_searching_and_filtering_the_index(page: Page, demo_ui: Served) -> None:
    from selenium.webdriver.common.keys import Keys

    _open_ui(page, demo_ui)

    def search(**fields: str) -> list[str]:
        for name in ("q", "f-task", "f-owner", "f-tag"):
            box = page.find(f"#{name}")
            box.clear()
            box.send_keys(fields.get(name.removeprefix("f-"), ""))
        page.js("document.querySelectorAll('[data-testid=search-hit]')"
                ".forEach(e => e.remove())")
        box.send_keys(Keys.ENTER)
        page.wait_for("document.querySelector('#search-results p')")
        return sorted(e.text for e in page.find_all("[data-testid=search-hit]"))

    assert search(q="resnet") == ["vision/resnet"]
    assert search(q="vision") == ["vision/resnet", "vision/yolo", "vision/zoo"]
    assert search(task="fill-mask") == ["nlp/bert"]
    assert search(owner="bob") == ["vision/resnet"]
    assert search(tag="staging") == ["vision/yolo"]
    assert search(q="vision", owner="alice") == ["vision/yolo", "vision/zoo"]
    page.screenshot("search")
    page.follow("vision/yolo", exact=True, testid="search-hit")
    assert [row[0] for row in _rows(page, "versions")] == ["v2", "v1", "v0"]


def test_filtering_the_rows_of_a_namespace(page: Page, demo_ui: Served) -> None:
    _open_ui(page, demo_ui)
    page.follow("vision", exact=True, testid="ns-link")
    page.find("#f-text").send_keys("bob")
    page.wait_for("[...document.querySelectorAll('#models tbody tr')]"
                  ".filter(r => !r.hidden).length === 1")
    assert [row[0] for row in _rows(page, "models")] == ["vision/resnet"]


def test_the_keyboard_alone_reaches_a_version(page: Page, demo_ui: Served) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    _open_ui(page, demo_ui)

    def tab_to(text: str) -> None:
        for _ in range(100):
            ActionChains(page.driver).send_keys(Keys.TAB).perform()
            focused = page.js("const e = document.activeElement;"
                              "return e && e.tagName === 'A' ? e.innerText.trim() : ''")
            if focused == text:
                return
        raise AssertionError(f"Tab never reached a link {text!r} on {page.url}")

    def enter() -> None:
        before = page.url
        ActionChains(page.driver).send_keys(Keys.ENTER).perform()
        page.wait_for(f"location.href !== {before!r} && document.readyState === 'complete'")

    tab_to("vision")
    # The focused link is visibly marked (a focus style: an outline or a shadow).
    style = page.js("const s = getComputedStyle(document.activeElement);"
                    "return [s.outlineStyle, s.boxShadow]")
    assert style[0] != "none" or style[1] != "none", style
    page.screenshot("focus")
    enter()
    tab_to("vision/yolo")
    enter()
    tab_to("v2")
    enter()
    assert "yolo run 2" in page.text()


def test_the_review_page_shows_what_a_promotion_branch_changes(page: Page, demo_ui: Served) -> None:
    _open_ui(page, demo_ui)
    page.follow(REVIEW_BRANCH, exact=True, testid="review-link")
    text = page.text()
    assert REVIEW_BRANCH in text
    assert "vision/yolo" in text and "champion" in text
    assert "v0" in text and "v2" in text  # champion: v0 -> v2
    page.screenshot("review")


@pytest.mark.parametrize("route", ["index", "model", "version", "metrics"])
def test_a_phone_width_has_no_horizontal_overflow(page: Page, demo_ui: Served,
                                                  route: str) -> None:
    _open_ui(page, demo_ui)
    if route != "index":
        _to_model(page)
    if route == "version":
        page.follow("v0", exact=True, testid="version-link")
    if route == "metrics":
        page.follow("Metric charts", testid="metrics-link")
    page.resize(*PHONE)
    page.wait_ready()
    width = page.js("return document.documentElement.clientWidth")
    assert width <= PHONE[0]
    wide = page.js(
        "const w = document.documentElement.clientWidth;"
        "return [...document.querySelectorAll('body *')]"
        ".filter(e => e.getBoundingClientRect().right > w + 1)"
        ".slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className)")
    assert page.no_horizontal_overflow(), f"wider than {width}px: {wide}"
    assert page.js("return !!document.querySelector('meta[name=viewport]')")
    page.screenshot(f"phone-{route}")
