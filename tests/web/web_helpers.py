"""What the web tests share: a small registry, a real ``modelbox ui`` process, and reads
of its pages over loopback HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from modelbox import ModelBoxClient

T0 = 1_780_000_000.0
BRANCH = "promote-yolo"


def demo(path: Path, *, points: int = 20) -> Path:
    """Two namespaces, versions with curves, tags moved, a collection, an experiment whose
    checkpoint was promoted, and a proposal branch."""
    with ModelBoxClient(path, create=True) as client:
        yolo = client.new_model("vision/yolo", owner="alice", task="detection",
                                description="Real-time object detector.")
        client.new_model("nlp/bert", owner="carol", task="fill-mask")
        for number in range(2):
            version = yolo.new_model_version(description=f"run {number}",
                                             metadata={"lr": 0.01}, framework="pytorch")
            for step in range(points):
                version.log_metrics({"loss": 1.0 / (1 + step + number)}, step=step,
                                    wallclock=T0 + step * 10.0)
        weights = path.parent / "weights.bin"
        weights.write_bytes(b"w" * 1000)
        yolo.version("v0").upload_artifact([str(weights)])
        yolo.version("v0").tag("staging")
        yolo.version("v1").tag("staging")
        yolo.version("v0").tag("champion")
        client.flush()
        zoo = client.new_collection("vision/zoo", owner="alice", description="Picked")
        zoo.link("vision/yolo:champion")
        run = client.new_experiment("vision/yolo-train", owner="alice", task="detection")
        for epoch in range(2):
            run.new_checkpoint(epoch, {"loss": 1.0 / (epoch + 1)})
        run.checkpoints()[-1].promote("vision/yolo", "v9")
    with ModelBoxClient(path, branch=BRANCH) as review:
        review.model("vision/yolo").version("v1").tag("champion")
    return path


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


def fetch(url: str, method: str = "GET") -> Response:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return Response(r.status, dict(r.headers), r.read())
    except urllib.error.HTTPError as exc:
        return Response(exc.code, dict(exc.headers), exc.read())


@contextmanager
def ui(registry: Path, *args: str) -> Iterator[str]:
    """A real ``modelbox ui --port 0`` in ``registry``; yields its base URL."""
    exe = Path(sys.executable).with_name("modelbox")
    proc = subprocess.Popen([str(exe), *args, "ui", "--port", "0"], cwd=registry,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=os.environ.copy())
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+/", line)
        if found is None:
            proc.kill()
            raise AssertionError(f"modelbox ui said {line!r}, {proc.communicate()[1]!r}")
        yield found.group()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


class Parsed(HTMLParser):
    """The elements of a page: (tag, attrs) in order, and the text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def links(self) -> list[str]:
        return [a["href"] or "" for tag, a in self.elements if tag == "a" and a.get("href")]

    def by_testid(self, testid: str) -> list[dict[str, str | None]]:
        return [a for _, a in self.elements if a.get("data-testid") == testid]


def assert_inert(text: str) -> None:
    """No script but ours, no event handler attribute, no javascript: URL in ``text``."""
    page = Parsed(text)
    for tag, attrs in page.elements:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        for name in ("href", "src", "action"):
            assert not (attrs.get(name) or "").strip().lower().startswith("javascript:")
        if tag == "script":
            assert (attrs.get("src") or "").endswith("static/modelbox.js") or (
                attrs.get("type") == "application/json"), attrs
        assert tag not in ("img", "iframe", "object", "embed", "svg") or (tag == "svg" and (
            attrs.get("id") == "chart-svg")), (tag, attrs)
