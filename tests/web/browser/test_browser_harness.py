"""The harness itself, on plain pages: what the page tests rely on must catch what it says.

A console error is seen, a script a page runs is seen, a screenshot is a PNG on disk, and
the browser never went through Selenium Manager."""

from __future__ import annotations

from pathlib import Path

import pytest

from browser.conftest import Servers
from browser.harness import CHROMEDRIVER, PWNED, SCREENSHOTS, Page, Served, lacks

pytestmark = pytest.mark.browser


def _site(tmp_path: Path, body: str) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(
        "<!doctype html><html><head><meta charset=utf-8><title>harness</title>"
        f"<link rel=icon href='data:,'></head><body>{body}</body></html>", encoding="utf-8")
    return site


def test_a_page_logging_an_error_is_caught(page: Page, servers: Servers,
                                           tmp_path: Path) -> None:
    served = servers.static(_site(tmp_path, "<p>hi</p><script>console.error('boom')"
                                            "</script>"))
    page.open(served.url)
    assert page.driver.title == "harness"
    errors = page.take_errors()
    assert any("boom" in str(e.get("message")) for e in errors), errors


def test_a_missing_resource_is_a_console_error(page: Page, servers: Servers,
                                               tmp_path: Path) -> None:
    served = servers.static(_site(tmp_path, "<img src='missing.png' alt=''>"))
    page.open(served.url)
    errors = page.take_errors()
    assert any("404" in str(e.get("message")) for e in errors), errors


def test_a_script_that_ran_is_caught(page: Page, servers: Servers, tmp_path: Path) -> None:
    served = servers.static(_site(tmp_path, f"<script>window.{PWNED}=1</script>"))
    page.open(served.url)
    with pytest.raises(AssertionError, match="a script from the registry ran"):
        page.assert_no_script_ran()


def test_an_alert_is_caught(page: Page, servers: Servers, tmp_path: Path) -> None:
    served = servers.static(_site(tmp_path, "<script>alert('x')</script>"))
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    page.driver.get(served.url)
    WebDriverWait(page.driver, 30).until(expected_conditions.alert_is_present())  # a loaded CPU
    with pytest.raises(AssertionError, match=r"alert\('x'\)"):
        page.assert_no_script_ran()
    page.driver.switch_to.alert.dismiss()


def test_a_quiet_page_passes_and_is_screenshotted(page: Page, servers: Servers,
                                                  tmp_path: Path) -> None:
    served = servers.static(_site(tmp_path, "<h1>quiet</h1>"))
    page.open(served.url)
    page.assert_no_script_ran()
    assert page.no_horizontal_overflow()
    shot = page.screenshot("quiet")
    assert shot.parent == SCREENSHOTS
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_driver_is_debians_and_selenium_manager_never_ran(page: Page) -> None:
    assert page.driver.service.path == CHROMEDRIVER
    caps = page.driver.capabilities
    assert caps["browserName"] in ("chrome", "chromium"), caps


@pytest.mark.skipif(bool(lacks("ui")), reason=str(lacks("ui")))
def test_the_pages_name_their_icon(page: Page, demo_ui: Served) -> None:
    page.open(demo_ui.url)
    assert page.js("return !!document.querySelector('link[rel~=icon]')")
