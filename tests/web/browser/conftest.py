"""Fixtures of the browser tests: one headless Chromium per session, a ``page`` per test
(fails the test on any console error, screenshots it), and real servers on loopback.

Marked ``browser``; skipped with the reason when Debian's Chromium or ChromeDriver or
Selenium is absent (``scripts/test.sh`` installs them when it can). Each test module says
``pytestmark = pytest.mark.browser``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import IDENTITY_EMAIL, IDENTITY_NAME

from browser.harness import DESKTOP, Page, Served, missing, serve_static, serve_ui, start_chromium
from browser.registries import demo


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The session's browser (a Selenium ``WebDriver``)."""
    reason = missing()
    if reason:
        pytest.skip(reason)
    with pytest.MonkeyPatch.context() as patch:
        # Selenium Manager would download a browser or a driver: make any call to it fail.
        patch.setenv("SE_MANAGER_PATH", "/nonexistent/selenium-manager")
        patch.setenv("SE_OFFLINE", "true")
        driver = start_chromium(tmp_path_factory.mktemp("chromium") / "profile")
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Page]:
    """The browser for one test; at the end a screenshot is kept and any console error the
    pages logged fails the test."""
    _dismiss_alert(chromium)  # an alert an earlier, failed test left open
    chromium.get("about:blank")
    chromium.set_window_size(*DESKTOP)
    chromium.get_log("browser")  # what an earlier test left
    view = Page(chromium, request.node.nodeid)
    yield view
    _dismiss_alert(chromium)
    view.screenshot("end")
    errors = [e for e in view.take_errors() if not _favicon_404(e)]
    chromium.get("about:blank")
    if errors:
        pytest.fail("console errors: " + "; ".join(str(e.get("message")) for e in errors),
                    pytrace=False)



def _dismiss_alert(chromium: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with contextlib.suppress(NoAlertPresentException):
        chromium.switch_to.alert.dismiss()


def _favicon_404(entry: dict[str, Any]) -> bool:
    """Chromium asks for /favicon.ico when a document names no icon. Every HTML page names
    an empty one (test_browser_harness.py::test_the_pages_name_their_icon), but a `.json`
    twin opened in the browser is shown bare and cannot: that one request is let through."""
    message = str(entry.get("message"))
    return "/favicon.ico - Failed to load resource" in message and " 404 " in message


class Servers:
    """Starts real servers for one test and stops them all at its end."""

    def __init__(self, logs: Path) -> None:
        self.logs, self.started = logs, list[Served]()

    def ui(self, registry: Path, *args: str) -> Served:
        """``modelbox ui --port P [ARGS]`` in ``registry``."""
        self.started.append(serve_ui(registry, self.logs, *args))
        return self.started[-1]

    def static(self, folder: Path) -> Served:
        """A plain http.server over ``folder`` (a built site)."""
        self.started.append(serve_static(folder, self.logs))
        return self.started[-1]


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    logs = tmp_path / "server-logs"
    logs.mkdir()
    found = Servers(logs)
    yield found
    for served in found.started:
        served.stop()


@contextlib.contextmanager
def isolated(home: Path) -> Iterator[None]:
    """What the autouse ``isolated_env`` gives a test, for a fixture shared by a module:
    its own HOME, Git identity and caches, no AWS or modelbox settings."""
    with pytest.MonkeyPatch.context() as patch:
        home.mkdir(parents=True)
        (home / ".gitconfig").write_text(
            f"[user]\n\tname = {IDENTITY_NAME}\n\temail = {IDENTITY_EMAIL}\n", encoding="utf-8")
        for name in list(os.environ):
            if name.startswith(("AWS_", "FSSPEC_", "GIT_", "MODELBOX_")):
                patch.delenv(name)
        patch.setenv("HOME", str(home))
        patch.setenv("GIT_CONFIG_NOSYSTEM", "1")
        patch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        patch.setenv("MODELBOX_CACHE_DIR", str(home / "cache"))
        yield


@pytest.fixture(scope="module")
def demo_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``modelbox ui`` over the demo registry, shared by a module's tests (they only read)."""
    root = tmp_path_factory.mktemp("demo-ui")
    with isolated(root / "home"):
        registry = demo(root / "registry")
        served = serve_ui(registry, root)
    try:
        yield served
    finally:
        served.stop()
