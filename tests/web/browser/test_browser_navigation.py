"""Reading the registry in Chromium through ``modelbox ui``: from the index to a model to a
version by clicking, by keyboard alone, searching and filtering, the tag timeline, a phone's
width. Every page is screenshotted and any console error fails the test (``page``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from browser.conftest import Servers
from browser.harness import Page, lacks
from browser.registries import demo

NO_UI = lacks("ui")
pytestmark = [pytest.mark.browser, pytest.mark.skipif(bool(NO_UI), reason=str(NO_UI))]

PHONE = (375, 740)


def _open_ui(page: Page, servers: Servers, tmp_path: Path) -> str:
    served = servers.ui(demo(tmp_path / "registry"))
    page.open(served.url)
    return served.url


def test_clicking_from_the_index_to_a_model_to_a_version(page: Page, servers: Servers,
                                                         tmp_path: Path) -> None:
    _open_ui(page, servers, tmp_path)
    text = page.text()
    for model in ("yolo", "resnet", "bert"):
        assert model in text
    assert "vision" in text and "nlp" in text  # models by namespace
    page.screenshot("index")
    page.follow("yolo")
    text = page.text()
    assert "vision/yolo" in text or "yolo" in page.driver.title
    assert "v2" in text and "v1" in text and "v0" in text
    # Versions newest first.
    assert text.index("v2") < text.index("v1") < text.index("v0"), text[:2000]
    page.screenshot("model")
    page.follow("v1", exact=True)
    text = page.text()
    assert "yolo run 1" in text  # the description
    assert "lr" in text and "epochs" in text  # metadata
    page.screenshot("version")


def test_a_version_page_shows_its_artifacts_with_type_size_and_digest(
        page: Page, servers: Servers, tmp_path: Path) -> None:
    _open_ui(page, servers, tmp_path)
    page.follow("resnet")
    page.follow("v0", exact=True)
    text = page.text()
    assert "weights.bin" in text
    assert "b2191f2bda70" in text  # the sha256 (or its start)
    assert "4096" in text.replace(",", "") or "4.0 KiB" in text or "4 KiB" in text \
        or "4.1 kB" in text or "4 KB" in text


def test_the_tag_timeline_lists_every_move_with_who(page: Page, servers: Servers,
                                                    tmp_path: Path) -> None:
    _open_ui(page, servers, tmp_path)
    page.follow("yolo")
    text = page.text()
    assert "staging" in text and "champion" in text
    assert "Test User" in text or "test@example.com" in text  # who moved them
    page.screenshot("timeline")


def test_searching_the_index_narrows_the_list(page: Page, servers: Servers,
                                              tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    _open_ui(page, servers, tmp_path)
    boxes = [e for e in page.driver.find_elements(
        By.CSS_SELECTOR, "input[type=search], input[type=text], input:not([type])")
        if e.is_displayed()]
    assert boxes, "the index has no search box"
    boxes[0].send_keys("resnet")
    page.js("return 1")  # let the input's handlers run
    shown = [e.text for e in page.driver.find_elements(By.CSS_SELECTOR, "a[href]")
             if e.is_displayed()]
    assert any("resnet" in t for t in shown), shown
    assert not any("yolo" in t for t in shown), shown
    page.screenshot("search")


def test_the_keyboard_alone_reaches_a_version(page: Page, servers: Servers,
                                              tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    _open_ui(page, servers, tmp_path)

    def tab_to(text: str) -> None:
        for _ in range(80):
            ActionChains(page.driver).send_keys(Keys.TAB).perform()
            focused = page.js("const e = document.activeElement;"
                              "return e && e.tagName === 'A' ? e.innerText.trim() : ''")
            if focused == text or (len(text) > 3 and text in focused):
                return
        raise AssertionError(f"Tab never reached a link {text!r} on {page.url}")

    def enter() -> None:
        before = page.url
        ActionChains(page.driver).send_keys(Keys.ENTER).perform()
        for _ in range(500):
            if page.url != before:
                page.wait_ready()
                return
            page.js("return 1")
        raise AssertionError(f"Enter left {before}")

    tab_to("yolo")
    # The focused link is visibly marked (a focus style: outline or box-shadow).
    style = page.js("const s = getComputedStyle(document.activeElement);"
                    "return [s.outlineStyle, s.outlineWidth, s.boxShadow]")
    assert style[0] != "none" or style[2] != "none", style
    page.screenshot("focus")
    enter()
    tab_to("v2")
    enter()
    assert "yolo run 2" in page.text()


@pytest.mark.parametrize("route", ["index", "model", "version"])
def test_a_phone_width_has_no_horizontal_overflow(page: Page, servers: Servers,
                                                  tmp_path: Path, route: str) -> None:
    _open_ui(page, servers, tmp_path)
    if route != "index":
        page.follow("yolo")
    if route == "version":
        page.follow("v0", exact=True)
    page.resize(*PHONE)
    page.wait_ready()
    width = page.js("return document.documentElement.clientWidth")
    assert width <= PHONE[0]
    wide = page.js(
        "const w = document.documentElement.clientWidth;"
        "return [...document.querySelectorAll('body *')]"
        ".filter(e => e.getBoundingClientRect().right > w + 1)"
        ".slice(0, 5).map(e => e.tagName + '.' + e.className)")
    assert page.no_horizontal_overflow(), f"wider than {width}px: {wide}"
    assert page.js("return !!document.querySelector('meta[name=viewport]')")
    page.screenshot(f"phone-{route}")
