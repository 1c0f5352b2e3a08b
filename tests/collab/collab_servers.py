"""Real Git servers on loopback for the collaboration tests, one of each per session.

* ``git daemon`` (``git://``), with receive-pack enabled so pushes work;
* ``git http-backend`` (smart HTTP) behind a tiny threaded ``http.server`` that runs it as
  a CGI program for each request.

Both serve every bare repository under one folder; :func:`bare_remote` makes a fresh one
per test and gives its URL for each transport (``file://``, a plain path, git, http).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

_START_TIMEOUT_S = 10.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


@dataclass(frozen=True)
class Servers:
    root: Path
    git_port: int
    http_port: int


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL: the daemon and the children it forked for connections."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


@contextlib.contextmanager
def _git_daemon(root: Path) -> Iterator[int]:
    port = _free_port()
    process = subprocess.Popen(
        ["git", "daemon", "--export-all", "--reuseaddr", "--informative-errors",
         "--enable=receive-pack", f"--base-path={root}", f"--port={port}",
         "--listen=127.0.0.1", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, so _stop reaches its children
    )
    try:
        _wait_for_port(port, process)
        yield port
    finally:
        _stop(process)


class _GitHttpHandler(BaseHTTPRequestHandler):
    """Runs ``git http-backend`` as CGI for each request (smart HTTP, no dumb fallback)."""

    root: Path

    def do_GET(self) -> None:
        self._cgi()

    def do_POST(self) -> None:
        self._cgi()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _cgi(self) -> None:
        path, _, query = self.path.partition("?")
        body = self._body()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(self.root),
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        proc = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
        )
        head, _, payload = proc.stdout.partition(b"\r\n\r\n")
        code, headers = 200, []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                code = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        try:
            self.send_response(code)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The client read enough (a 404's status line) and hung up. The server runs
            # in the test's own process, so socketserver's traceback would land in the
            # stderr the test asserts holds one line: a client leaving is no error here.
            pass


@contextlib.contextmanager
def _git_http(root: Path) -> Iterator[int]:
    handler = type("Handler", (_GitHttpHandler,), {"root": root})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="session")
def git_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """``git daemon`` and ``git http-backend`` serving the same folder of bare repos."""
    if shutil.which("git") is None:
        pytest.skip("the git CLI is not installed")
    root = tmp_path_factory.mktemp("git-served")
    with _git_daemon(root) as git_port, _git_http(root) as http_port:
        yield Servers(root, git_port, http_port)


@dataclass(frozen=True)
class BareRemote:
    path: Path
    urls: dict[str, str]  # transport -> URL


TRANSPORTS = ["path", "file", "git", "http"]


@pytest.fixture
def bare_remote(git_servers: Servers) -> BareRemote:
    """A fresh, empty bare repository that every transport can read and write."""
    name = f"{uuid.uuid4().hex[:12]}.git"
    path = git_servers.root / name
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    subprocess.run(["git", "-C", str(path), "config", "http.receivepack", "true"], check=True)
    return BareRemote(path, {
        "path": str(path),
        "file": path.as_uri(),
        "git": f"git://127.0.0.1:{git_servers.git_port}/{name}",
        "http": f"http://127.0.0.1:{git_servers.http_port}/{name}",
    })
