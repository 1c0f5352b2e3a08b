"""Metric charts in Chromium: the reader toggles the series of several versions on one chart
and switches the x axis between step and wallclock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from browser.conftest import Servers
from browser.harness import Page, lacks
from browser.registries import demo

NO_UI = lacks("ui")
pytestmark = [pytest.mark.browser, pytest.mark.skipif(bool(NO_UI), reason=str(NO_UI))]

VISIBLE_LINES = """
return [...document.querySelectorAll('svg polyline, svg path')].filter(e => {
  const s = getComputedStyle(e), r = e.getBoundingClientRect();
  return s.display !== 'none' && s.visibility !== 'hidden' && s.opacity !== '0'
    && (r.width > 0 || r.height > 0) && e.closest('svg').getBoundingClientRect().width > 0;
}).length
"""


def _chart_page(page: Page, servers: Servers, tmp_path: Path) -> None:
    served = servers.ui(demo(tmp_path / "registry"))
    page.open(served.url)
    page.follow("yolo")
    for word in ("Metrics", "metrics", "Chart", "chart", "Compare", "compare"):
        if page.js("return document.querySelectorAll('svg').length"):
            return
        if any(word in text for text, _ in page.links()):
            page.follow(word)
    assert page.js("return document.querySelectorAll('svg').length"), "no chart found"


def _toggles(page: Page) -> list[Any]:
    from selenium.webdriver.common.by import By

    found = [e for e in page.driver.find_elements(
        By.CSS_SELECTOR, "input[type=checkbox], button[aria-pressed]") if e.is_displayed()]
    assert found, f"no series toggle on {page.url}"
    return found


def test_toggling_a_series_hides_and_shows_its_line(page: Page, servers: Servers,
                                                    tmp_path: Path) -> None:
    _chart_page(page, servers, tmp_path)
    toggles = _toggles(page)
    lines = page.js(VISIBLE_LINES)
    page.screenshot("chart")
    toggles[0].click()
    fewer = page.js(VISIBLE_LINES)
    if fewer > lines:  # the toggle was off: it added a series
        toggles[0].click()
        toggles[0].click()
    assert page.js(VISIBLE_LINES) != lines, "toggling a series changed nothing"
    page.screenshot("toggled")
    toggles[0].click()
    assert page.js(VISIBLE_LINES) == lines


def test_switching_step_and_wallclock_redraws_the_chart(page: Page, servers: Servers,
                                                        tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select

    _chart_page(page, servers, tmp_path)
    before = page.js("return document.querySelector('svg').outerHTML")
    radios = [e for e in page.driver.find_elements(By.CSS_SELECTOR, "input[type=radio]")
              if "wall" in (e.get_attribute("value") or "").lower()]
    buttons = [e for e in page.driver.find_elements(By.CSS_SELECTOR, "button, a")
               if "wall" in e.text.lower() and e.is_displayed()]
    selects = [e for e in page.driver.find_elements(By.TAG_NAME, "select")
               if any("wall" in o.text.lower() for o in Select(e).options)]
    if radios:
        page.driver.execute_script("arguments[0].click()", radios[0])
    elif selects:
        select = Select(selects[0])
        select.select_by_visible_text(next(o.text for o in select.options
                                           if "wall" in o.text.lower()))
    elif buttons:
        buttons[0].click()
        page.wait_ready()
    else:
        raise AssertionError(f"no step/wallclock switch on {page.url}")
    after = page.js("return document.querySelector('svg').outerHTML")
    assert after != before, "switching to wallclock redrew nothing"
    page.screenshot("wallclock")
