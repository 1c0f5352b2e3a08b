"""``modelbox ui``: the site's pages rendered on demand, on loopback, read-only.

Only ``GET`` and ``HEAD`` are answered (anything else: 405); the server binds
127.0.0.1 and nothing else. Rendered pages are kept in memory keyed by the registry's
head commit and the URL, so a page is built once per commit; a write to the registry (a
new head) makes the next request build from the new commit. Pages are built one at a time
(one lock): the Git object reader is not shared between threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from modelbox.errors import InvalidValueError, ModelboxError
from modelbox.web import pages
from modelbox.web.render import render
from modelbox.web.site import static_files

__all__ = ["Server", "serve"]

HOST = "127.0.0.1"
_CACHE_ENTRIES = 512
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_TYPES = {".html": "text/html; charset=utf-8", ".json": "application/json; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, registry: Any, port: int) -> None:
        self.registry = registry
        self.lock = threading.Lock()
        self.cache: OrderedDict[tuple[str | None, str], bytes | None] = OrderedDict()
        self.reader: pages.Reader | None = None
        self.static = static_files()
        super().__init__((HOST, port), _Handler)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/"

    def body(self, path: str) -> bytes | None:
        """The bytes at URL path ``path`` (``m/ai/yolo/_model.html``), or None."""
        if path in self.static:
            return self.static[path]
        stem, dot, ext = path.rpartition(".")
        if not dot or ext not in ("html", "json"):
            return None
        with self.lock:
            head = self.registry.head()
            if self.reader is None or self.reader.commit != head:
                self.reader = pages.Reader(self.registry, use_store=True)
                self.cache.clear()
            key = (head, path)
            if key in self.cache:
                self.cache.move_to_end(key)
                return self.cache[key]
            try:
                doc = pages.page(self.reader, stem)
            except ModelboxError as exc:  # a broken document: the page says so
                doc = pages.error(stem, exc)
            data: bytes | None = None
            if doc is not None and ext == "json":
                data = pages.dumps(doc).encode("utf-8")
            elif doc is not None and doc["kind"] not in ("search", "series"):
                data = render(doc).encode("utf-8")
            self.cache[key] = data
            if len(self.cache) > _CACHE_ENTRIES:
                self.cache.popitem(last=False)
            return data


class _Handler(BaseHTTPRequestHandler):
    server: Server
    server_version = "modelbox"
    sys_version = ""

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _refuse(self) -> None:
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse  # noqa: N815  (http.server's names)

    def _answer(self, *, send_body: bool) -> None:
        path = unquote(urlsplit(self.path).path).lstrip("/") or "index.html"
        if path.endswith("/"):
            path += "index.html"
        status, body = HTTPStatus.OK, self.server.body(path)
        if body is None:
            status, body, path = HTTPStatus.NOT_FOUND, b"not found\n", "error.txt"
        self.send_response(status)
        ext = path[path.rfind("."):]
        self.send_header("Content-Type", _TYPES.get(ext, "text/plain; charset=utf-8"))
        self.send_header("Content-Length", str(len(body)))
        for name, value in _HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the terminal shows the URL line and nothing per request


def serve(registry: Any, port: int, ready: Any = None) -> None:
    """Serve ``registry`` on 127.0.0.1:``port`` (0: a free port) until interrupted;
    ``ready(url)`` is called once the socket listens."""
    try:
        server = Server(registry, port)
    except OSError as exc:  # the port is taken or not ours to bind
        raise InvalidValueError(f"cannot listen on {HOST}:{port}: {exc.strerror or exc}; "
                                "pick another --port (0: any free one)") from None
    try:
        if ready is not None:
            ready(server.url)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
