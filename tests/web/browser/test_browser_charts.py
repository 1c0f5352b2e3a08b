"""Metric charts in Chromium: the reader toggles the series of several versions on one chart,
picks the metric, and switches the x axis between step and wallclock."""

from __future__ import annotations

import pytest

from browser.harness import Page, Served, lacks

NO_UI = lacks("ui")
pytestmark = [pytest.mark.browser, pytest.mark.skipif(bool(NO_UI), reason=str(NO_UI))]

LINES = "[...document.querySelectorAll('#chart svg polyline')]"


def _chart_page(page: Page, served: Served) -> None:
    page.open(served.url)
    page.follow("vision", exact=True, testid="ns-link")
    page.follow("vision/yolo", exact=True, testid="model-link")
    page.follow("Metric charts", testid="metrics-link")
    page.wait_for(f"{LINES}.length > 0")


def _drawn(page: Page) -> list[str]:
    """The series drawn now (their ``data-series``), in order."""
    drawn: list[str] = page.js(f"return {LINES}.map(l => l.getAttribute('data-series'))")
    return drawn


def test_toggling_a_series_hides_and_shows_its_line(page: Page, demo_ui: Served) -> None:
    _chart_page(page, demo_ui)
    toggles = page.find_all(".series-toggle")
    assert len(toggles) == 3, "one series per version of the chosen metric"
    everything = _drawn(page)
    assert len(everything) == 3
    page.screenshot("chart")
    toggles[1].click()
    assert len(_drawn(page)) == 2 and toggles[1].get_attribute("data-series") not in _drawn(page)
    toggles[0].click()
    assert len(_drawn(page)) == 1
    page.screenshot("toggled")
    toggles[0].click()
    toggles[1].click()
    assert _drawn(page) == everything


def test_choosing_the_metric_shows_its_series(page: Page, demo_ui: Served) -> None:
    from selenium.webdriver.support.select import Select

    _chart_page(page, demo_ui)
    metric = Select(page.find("#chart-key"))
    assert sorted(o.text for o in metric.options) == ["accuracy", "loss"]
    before = page.js("return document.querySelector('#chart svg').outerHTML")
    other = next(o.text for o in metric.options if o.text != metric.first_selected_option.text)
    metric.select_by_visible_text(other)
    assert page.js("return document.querySelector('#chart svg').outerHTML") != before
    shown = [e.text for e in page.find_all("#series li")]
    assert len(shown) == 3 and all(f"{other} (" in text for text in shown), shown


def test_switching_step_and_wallclock_redraws_the_chart(page: Page, demo_ui: Served) -> None:
    _chart_page(page, demo_ui)
    by_step = page.js(f"return {LINES}.map(l => l.getAttribute('points'))")
    page.find("#axis-wallclock").click()
    by_time = page.js(f"return {LINES}.map(l => l.getAttribute('points'))")
    assert by_time != by_step
    # Runs of different speeds: by step the curves share their x range, by wallclock the
    # slower runs reach further right (each curve's last x).
    last_x = page.js(f"return {LINES}.map(l => parseFloat(l.getAttribute('points')"
                     ".trim().split(' ').pop().split(',')[0]))")
    assert len(set(last_x)) == len(last_x), last_x
    assert "wallclock" in page.js("return document.querySelector('#chart svg')"
                                  ".getAttribute('aria-label')")
    page.screenshot("wallclock")
    page.find("#axis-step").click()
    assert page.js(f"return {LINES}.map(l => l.getAttribute('points'))") == by_step
