"""Real headless Chromium for the web tests: Debian's ``chromium`` driven through Debian's
``chromedriver`` by Selenium, and real server processes (``modelbox ui``, a plain
``http.server`` for a built site) on loopback.

Selenium Manager never runs: the driver's path is given to ``Service`` and the browser's to
``Options.binary_location``, and ``SE_MANAGER_PATH`` points at nothing, so a code path that
reached for it would fail instead of downloading a browser.

Chromium's flags keep it off the network (the machine's network is closed: without
``--disable-background-networking`` and friends it would try Google's hosts at every start).
Every page's console is collected (``goog:loggingPrefs``); the ``page`` fixture fails a test
whose page logged an error. Screenshots go to ``tests/.artifacts/screenshots/`` (gitignored),
kept as the run's artefacts.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".artifacts" / "screenshots"
MODELBOX = str(Path(sys.executable).with_name("modelbox"))
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars")
DESKTOP = (1280, 900)
# A global a hostile string sets if the page ever runs it (see assert_no_script_ran).
PWNED = "__modelbox_pwned"


def missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return (f"{path} absent: install Debian's {package} (scripts/test.sh does, "
                    "as root: apt-get install -y chromium chromium-driver)")
    try:
        import selenium  # noqa: F401  -- only asking whether the test extra is installed
    except ImportError:
        return "selenium absent: pip install -e '.[test]'"
    return None


def lacks(*command: str) -> str | None:
    """Why ``modelbox COMMAND`` cannot be tested here (not in this build), or None."""
    proc = subprocess.run([MODELBOX, *command, "--help"], capture_output=True, check=False)
    if proc.returncode == 0:
        return None
    return f"`modelbox {' '.join(command)}` is not in this build yet (branch s6/website)"


def start_chromium(profile: Path) -> Any:
    """A headless Chromium with a fresh profile in ``profile``; the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={DESKTOP[0]},{DESKTOP[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An alert stays open, for assert_no_script_ran to see, instead of being dismissed.
    options.unhandled_prompt_behavior = "ignore"
    service = Service(CHROMEDRIVER, log_output=str(profile.parent / "chromedriver.log"))
    return webdriver.Chrome(service=service, options=options)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Served:
    """A real server process on a loopback port; ``url`` is its root."""

    def __init__(self, argv: Sequence[str], port: int, cwd: Path, log: Path,
                 env: Mapping[str, str] | None = None, timeout: float = 30.0) -> None:
        self.port, self.log = port, log
        self.url = f"http://127.0.0.1:{port}/"
        self.started = time.perf_counter()
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                list(argv), cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})}, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not answers(port):
            if self.proc.poll() is not None:
                raise AssertionError(f"{argv} exited {self.proc.returncode} before serving: "
                                     f"{log.read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"{argv} did not listen on {port} in {timeout:.0f} s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def serve_ui(registry: Path, log_dir: Path, *args: str) -> Served:
    """``modelbox ui --port P`` in ``registry``, as a user starts it."""
    port = free_port()
    return Served([MODELBOX, "ui", "--port", str(port), *args], port, registry,
                  log_dir / f"ui-{port}.log")


def serve_static(folder: Path, log_dir: Path) -> Served:
    """A plain ``python -m http.server`` over ``folder``: what a Pages host does."""
    port = free_port()
    return Served([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port),
                   "--directory", str(folder)], port, folder, log_dir / f"static-{port}.log")


def screenshot_name(nodeid: str, label: str = "") -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1])
    return f"{stem}{'-' + label if label else ''}.png"


class Page:
    """One test's view of the shared browser: navigation, console and screenshots."""

    def __init__(self, driver: Any, nodeid: str) -> None:
        self.driver, self.nodeid = driver, nodeid
        self.errors: list[dict[str, Any]] = []

    def open(self, url: str) -> None:
        self.driver.get(url)
        self.wait_ready()

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while self.driver.execute_script("return document.readyState") != "complete":
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.driver.current_url} not loaded in {timeout} s")
            time.sleep(0.02)

    def drain_console(self) -> list[dict[str, Any]]:
        """The console entries since the last call; errors are also kept for the end."""
        entries: list[dict[str, Any]] = self.driver.get_log("browser")
        self.errors += [e for e in entries if e.get("level") == "SEVERE"]
        return entries

    def take_errors(self) -> list[dict[str, Any]]:
        """The console errors so far, forgotten (for a test that expects some)."""
        self.drain_console()
        errors, self.errors = self.errors, []
        return errors

    def screenshot(self, label: str = "") -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / screenshot_name(self.nodeid, label)
        self.driver.save_screenshot(str(path))
        return path

    def resize(self, width: int, height: int) -> None:
        self.driver.set_window_size(width, height)

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    @property
    def url(self) -> str:
        return str(self.driver.current_url)

    def text(self) -> str:
        """What a reader sees on the page (``innerText`` of the body)."""
        return str(self.js("return document.body.innerText"))

    def links(self) -> list[tuple[str, str]]:
        """(visible text, href) of every link on the page."""
        found: list[list[str]] = self.js(
            "return [...document.querySelectorAll('a[href]')]"
            ".map(a => [a.innerText.trim(), a.getAttribute('href')])")
        return [(text, href) for text, href in found]

    def link(self, text: str, *, exact: bool = False, testid: str | None = None) -> Any:
        """The first visible link whose text is (or contains) ``text``; with ``testid``,
        only links with that ``data-testid`` (the pages' stable hooks, docs/web.md)."""
        from selenium.webdriver.common.by import By

        css = f"a[href][data-testid='{testid}']" if testid else "a[href]"
        for element in self.driver.find_elements(By.CSS_SELECTOR, css):
            shown = element.text.strip()
            if element.is_displayed() and (shown == text if exact else text in shown):
                return element
        raise AssertionError(f"no visible link {text!r} ({css}) on {self.url}: "
                             f"{self.links()[:40]}")

    def follow(self, text: str, *, exact: bool = False, testid: str | None = None) -> None:
        """Click the link ``text`` and wait for the page it leads to."""
        self.click_and_wait(self.link(text, exact=exact, testid=testid))

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str, *, visible: bool = True) -> list[Any]:
        from selenium.webdriver.common.by import By

        return [e for e in self.driver.find_elements(By.CSS_SELECTOR, css)
                if e.is_displayed() or not visible]

    def wait_for(self, script: str, timeout: float = 10.0) -> Any:
        """Poll the JavaScript expression ``script`` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(f"return ({script})")
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{script} still false on {self.url} after {timeout} s")
            time.sleep(0.02)

    def click_and_wait(self, element: Any, timeout: float = 15.0) -> None:
        before = self.url
        element.click()
        deadline = time.monotonic() + timeout
        while self.url == before:
            if time.monotonic() > deadline:
                raise AssertionError(f"clicking {element.text!r} left {before}")
            time.sleep(0.02)
        self.wait_ready()

    def assert_no_script_ran(self) -> None:
        """Nothing a hostile string carried executed: no alert is open and no global it
        would set exists."""
        from selenium.common.exceptions import NoAlertPresentException

        with contextlib.suppress(NoAlertPresentException):
            text = self.driver.switch_to.alert.text
            raise AssertionError(f"a script from the registry ran: alert({text!r})")
        assert self.js(f"return typeof window.{PWNED}") == "undefined", \
            "a script from the registry ran: it set window." + PWNED

    def no_horizontal_overflow(self) -> bool:
        return bool(self.js("return document.documentElement.scrollWidth <= "
                            "document.documentElement.clientWidth"))


def payloads() -> Iterator[str]:
    """Strings that run a script if a page puts them into HTML, an attribute, a URL or an
    inline script unescaped; each sets :data:`PWNED` or opens an alert."""
    yield f"<script>window.{PWNED}=1</script>"
    yield f'<img src=x onerror="window.{PWNED}=2">'
    yield f'"><svg onload="window.{PWNED}=3">'
    yield f"'><iframe srcdoc=\"<script>parent.{PWNED}=4</script>\">"
    yield f"</script><script>window.{PWNED}=5</script>"
    yield "javascript:alert(6)"
    yield "</title><script>alert(7)</script><!--"


def stop_all(servers: Sequence[Served]) -> None:
    for served in servers:
        served.stop()

