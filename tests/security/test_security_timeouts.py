"""No store operation hangs: a silent, full or frozen endpoint ends in one line, in time.

Each hostile server is real and on loopback: a socket that accepts connections and never
answers, a socket whose backlog is full (connections are never accepted), a SeaweedFS
frozen with SIGSTOP in the middle of an upload, and a throttling proxy in front of
SeaweedFS that is slow but never silent (which must not time out).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hostile import Proc, assert_refused, fingerprint, modelbox
from s3server import S3Server, running_s3_server

from modelbox.errors import InvalidValueError, StoreError, StoreTimeoutError
from modelbox.objects import open_store

if TYPE_CHECKING:
    from conftest import Run

BUCKET = "modelbox-timeouts"
MODEL = "ai/timeouts"
TIGHT = {  # small enough for a test, as a user would set them
    "MODELBOX_STORE_CONNECT_TIMEOUT": "1",
    "MODELBOX_STORE_READ_TIMEOUT": "1",
    "MODELBOX_STORE_ATTEMPTS": "2",
}
BOUND_S = 20.0
"""2 attempts of 1 s, botocore's backoff, and a CLI process starting: far less than this."""


# Hostile servers


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts every connection and never sends a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.1)
    held: list[socket.socket] = []
    over = threading.Event()

    def accept() -> None:
        while not over.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        over.set()
        thread.join(5)
        listener.close()
        for connection in held:
            connection.close()


@pytest.fixture
def full_port() -> Iterator[int]:
    """A loopback port whose accept queue is full: new connections are never completed."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port: int = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.2)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


class Throttle:
    """A TCP proxy to ``target`` that moves at most ``rate`` bytes/s each way, 64 KiB at a
    time: slow, never silent for long."""

    def __init__(self, target: tuple[str, int], rate: float) -> None:
        self.target, self.rate = target, rate
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port: int = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client = self.listener.accept()[0]
                server = socket.create_connection(self.target)
            except OSError:
                return
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(64 << 10):
                time.sleep(len(data) / self.rate)
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self.listener.close()
        for connection in self.sockets:
            connection.close()


# A registry on S3


def s3_env(endpoint: str, server: S3Server | None = None) -> dict[str, str]:
    """The variables of a CLI process whose store is a prefix of BUCKET at ``endpoint``."""
    env = {
        "AWS_ACCESS_KEY_ID": server.access_key if server else "key",
        "AWS_SECRET_ACCESS_KEY": server.secret_key if server else "secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "MODELBOX_STORE": f"s3://{BUCKET}/{uuid.uuid4().hex}",
    }
    return env


def new_registry(path: Path, run: Run) -> Path:
    """A registry with MODEL@v1, made in-process (no store is contacted to make it)."""
    for argv in (("init", path), ("--repo", path, "model", "create", MODEL),
                 ("--repo", path, "version", "create", MODEL, "v1")):
        assert run(*argv).code == 0
    return path


def artifact(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def assert_timed_out(code: int, err: str, port: int, what: str, started: float) -> None:
    assert time.monotonic() - started < BOUND_S, err
    assert_refused(code, err, f"http://127.0.0.1:{port}", f"did not {what} within 1 s",
                   "(2 attempts)", "MODELBOX_STORE_READ_TIMEOUT")


# 1. An endpoint that accepts and never answers; one that never accepts


@pytest.mark.parametrize("size", [100_000, 9 << 20], ids=["small-file", "large-file"])
def test_add_to_a_silent_endpoint_ends_in_one_line(
    tmp_path: Path, run: Run, silent_port: int, size: int
) -> None:
    env = {**s3_env(f"http://127.0.0.1:{silent_port}"), **TIGHT}
    reg = new_registry(tmp_path / "reg", run)
    source = artifact(tmp_path / "model.bin", size)
    objects = Path(os.environ["MODELBOX_CACHE_DIR"]) / "objects"
    before = fingerprint(reg, objects)
    started = time.monotonic()
    code, _, err = modelbox("--repo", reg, "artifact", "add", f"{MODEL}@v1", source, env=env)
    assert_timed_out(code, err, silent_port, "answer", started)
    assert fingerprint(reg, objects) == before


def test_add_to_an_endpoint_that_never_accepts_ends_in_one_line(
    tmp_path: Path, run: Run, full_port: int
) -> None:
    env = {**s3_env(f"http://127.0.0.1:{full_port}"), **TIGHT}
    reg = new_registry(tmp_path / "reg", run)
    source = artifact(tmp_path / "model.bin", 100_000)
    before = fingerprint(reg)
    started = time.monotonic()
    code, _, err = modelbox("--repo", reg, "artifact", "add", f"{MODEL}@v1", source, env=env)
    assert_timed_out(code, err, full_port, "accept a connection", started)
    assert fingerprint(reg) == before


@pytest.mark.parametrize("size", [100_000, 20 << 20], ids=["small-file", "large-file"])
def test_get_from_a_silent_endpoint_ends_in_one_line(
    tmp_path: Path, run: Run, s3_server: S3Server, silent_port: int, size: int
) -> None:
    s3_server.create_bucket(BUCKET)
    env = s3_env(s3_server.endpoint, s3_server)
    reg = new_registry(tmp_path / "reg", run)
    source = artifact(tmp_path / "model.bin", size)
    code, _, err = modelbox("--repo", reg, "artifact", "add", f"{MODEL}@v1", source, env=env)
    assert code == 0, err
    # The same store, now behind an endpoint that never answers; a cache that lacks it.
    cache = tmp_path / "fresh-cache"
    env |= {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{silent_port}",
            "MODELBOX_CACHE_DIR": str(cache), **TIGHT}
    out = tmp_path / "out"
    before = fingerprint(reg, out)
    started = time.monotonic()
    code, _, err = modelbox("--repo", reg, "get", f"{MODEL}@v1", "-o", out, env=env)
    assert_timed_out(code, err, silent_port, "answer", started)
    assert fingerprint(reg, out) == before
    assert not [path for path in cache.rglob("*") if not path.is_dir()]


def test_tracking_a_file_behind_a_silent_endpoint_ends_in_one_line(
    tmp_path: Path, run: Run, silent_port: int
) -> None:
    env = {**s3_env(f"http://127.0.0.1:{silent_port}"), **TIGHT}
    reg = new_registry(tmp_path / "reg", run)
    before = fingerprint(reg)
    started = time.monotonic()
    code, _, err = modelbox("--repo", reg, "artifact", "track", f"{MODEL}@v1",
                            f"s3://{BUCKET}/elsewhere/report.html", env=env)
    assert_timed_out(code, err, silent_port, "answer", started)
    assert fingerprint(reg) == before


@pytest.mark.parametrize(
    ("retries", "said"),
    [('{"total_max_attempts": 1}', "(1 attempt)"),
     ('{"max_attempts": 1, "mode": "legacy"}', "(2 attempts)")],  # botocore: retries only
)
def test_an_explicit_fsspec_configuration_wins_over_the_defaults(
    silent_port: int, monkeypatch: pytest.MonkeyPatch, retries: str, said: str
) -> None:
    for name, value in s3_env(f"http://127.0.0.1:{silent_port}").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MODELBOX_STORE_READ_TIMEOUT", "600")
    monkeypatch.setenv("MODELBOX_STORE_ATTEMPTS", "9")
    monkeypatch.setenv(
        "FSSPEC_S3", f'{{"config_kwargs": {{"read_timeout": 1, "retries": {retries}}}}}'
    )
    started = time.monotonic()
    with pytest.raises(StoreTimeoutError) as caught:
        open_store(os.environ["MODELBOX_STORE"]).missing(["0" * 64])
    assert time.monotonic() - started < 10
    assert f"within 1 s {said}" in str(caught.value)


def test_an_http_store_that_never_answers_ends_in_time(
    tmp_path: Path, silent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELBOX_STORE_READ_TIMEOUT", "1")
    store = open_store(f"http://127.0.0.1:{silent_port}/store")
    started = time.monotonic()
    # fsspec's HTTP filesystem reports what it could not read as missing: a StoreError.
    with pytest.raises(StoreError):
        store.get_files([("0" * 64, 10, tmp_path / "out" / "x")])
    assert time.monotonic() - started < BOUND_S
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MODELBOX_STORE_READ_TIMEOUT", "soon"),
        ("MODELBOX_STORE_READ_TIMEOUT", "0"),
        ("MODELBOX_STORE_CONNECT_TIMEOUT", "-1"),
        ("MODELBOX_STORE_CONNECT_TIMEOUT", "nan"),
        ("MODELBOX_STORE_READ_TIMEOUT", "inf"),
        ("MODELBOX_STORE_ATTEMPTS", "0"),
        ("MODELBOX_STORE_ATTEMPTS", "2.5"),
        ("MODELBOX_STORE_ATTEMPTS", "1000000"),
    ],
)
def test_a_malformed_timeout_setting_is_named(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(InvalidValueError, match=name):
        open_store("s3://bucket/prefix")


def test_a_changed_timeout_setting_takes_effect_in_a_long_lived_process(
    tmp_path: Path, run: Run, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_server.create_bucket(BUCKET)
    for name, value in s3_env(s3_server.endpoint, s3_server).items():
        monkeypatch.setenv(name, value)
    reg = new_registry(tmp_path / "reg", run)
    first = artifact(tmp_path / "first.bin", 1000)
    assert run("--repo", reg, "artifact", "add", f"{MODEL}@v1", first).code == 0
    # The same process (an API client, a notebook) opens the store again: its client,
    # cached per environment, must not keep the old policy.
    monkeypatch.setenv("MODELBOX_STORE_READ_TIMEOUT", "soon")
    second = artifact(tmp_path / "second.bin", 1000)
    code, _, err = run("--repo", reg, "artifact", "add", f"{MODEL}@v1", second)
    assert_refused(code, err, "MODELBOX_STORE_READ_TIMEOUT='soon'")


# 2. A real server frozen (SIGSTOP) in the middle of an upload or a download


@pytest.fixture(scope="module")
def own_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A SeaweedFS of this module's own, to freeze: never the session's shared one."""
    with running_s3_server(tmp_path_factory.mktemp("frozen-s3")) as server:
        server.create_bucket(BUCKET)
        yield server


def _upload_started(server: S3Server) -> Callable[[], bool]:
    client = server.client()  # once: a new client costs more than a poll's interval

    def started() -> bool:
        with contextlib.suppress(OSError):
            answer = client.call_s3("list_multipart_uploads", Bucket=BUCKET)
            return bool(answer.get("Uploads"))
        return False

    return started


def _download_started(cache: Path) -> bool:
    return any(path.name.startswith(".mbtmp-") for path in cache.rglob("*"))


def _freeze_once(server: S3Server, argv: list[str | Path], env: dict[str, str],
                 started: Callable[[], bool]) -> tuple[Proc, float]:
    """Run the CLI, SIGSTOP the server as soon as ``started()``; SIGCONT it once the CLI
    has ended. Returns what the CLI returned and how long it took after the freeze."""
    result: list[Proc] = []
    worker = threading.Thread(target=lambda: result.append(modelbox(*argv, env=env)),
                              daemon=True)
    worker.start()
    deadline = time.monotonic() + 60
    while not started():
        assert worker.is_alive(), f"the transfer ended before it could be frozen: {result}"
        assert time.monotonic() < deadline, "the transfer never started"
        time.sleep(0.01)
    os.kill(server.process.pid, signal.SIGSTOP)
    frozen = time.monotonic()
    try:
        worker.join(BOUND_S + 10)
        assert not worker.is_alive(), f"{argv} hangs on a frozen server"
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    return result[0], time.monotonic() - frozen


@pytest.mark.stress
def test_a_server_frozen_during_an_upload_ends_in_one_line_and_a_rerun_succeeds(
    tmp_path: Path, run: Run, own_s3: S3Server
) -> None:
    env = {**s3_env(own_s3.endpoint, own_s3), **TIGHT, "MODELBOX_STORE_READ_TIMEOUT": "2"}
    reg = new_registry(tmp_path / "reg", run)
    source = artifact(tmp_path / "model.bin", 48 << 20)
    before = fingerprint(reg)
    argv: list[str | Path] = ["--repo", reg, "artifact", "add", f"{MODEL}@v1", source]
    (code, _, err), took = _freeze_once(own_s3, argv, env, _upload_started(own_s3))
    assert took < BOUND_S, err
    assert_refused(code, err, own_s3.endpoint, "did not answer within 2 s", "(2 attempts)")
    assert fingerprint(reg) == before
    # Nothing under a final key; the re-run sends the whole file and records it.
    prefix = env["MODELBOX_STORE"].removeprefix("s3://")
    assert not own_s3.client().find(f"{prefix}/sha256")
    code, out, err = modelbox(*argv, env=env)
    assert code == 0, err
    assert "Added" in out


@pytest.mark.stress
def test_a_server_frozen_during_a_download_ends_in_one_line_and_a_rerun_succeeds(
    tmp_path: Path, run: Run, own_s3: S3Server
) -> None:
    env = {**s3_env(own_s3.endpoint, own_s3), **TIGHT, "MODELBOX_STORE_READ_TIMEOUT": "2"}
    reg = new_registry(tmp_path / "reg", run)
    source = artifact(tmp_path / "model.bin", 48 << 20)
    code, _, err = modelbox("--repo", reg, "artifact", "add", f"{MODEL}@v1", source, env=env)
    assert code == 0, err
    cache = tmp_path / "fresh-cache"
    cache.mkdir()
    env["MODELBOX_CACHE_DIR"] = str(cache)
    out = tmp_path / "out"
    before = fingerprint(reg, out)
    argv: list[str | Path] = ["--repo", reg, "get", f"{MODEL}@v1", "-o", out]
    (code, _, err), took = _freeze_once(own_s3, argv, env, lambda: _download_started(cache))
    assert took < BOUND_S, err
    assert_refused(code, err, own_s3.endpoint, "did not answer within 2 s", "(2 attempts)")
    assert fingerprint(reg, out) == before
    assert not [path for path in cache.rglob("*") if not path.is_dir()]
    code, _, err = modelbox(*argv, env=env)
    assert code == 0, err
    assert (out / "model.bin").read_bytes() == source.read_bytes()


# 3. A slow server that keeps sending is not a stall


def test_a_slow_server_that_keeps_sending_is_not_timed_out(
    tmp_path: Path, run: Run, s3_server: S3Server
) -> None:
    s3_server.create_bucket(BUCKET)
    host, port = s3_server.endpoint.removeprefix("http://").split(":")
    proxy = Throttle((host, int(port)), rate=4 << 20)
    try:
        # 2 s of silence allowed (SeaweedFS on a busy machine may think for a second);
        # the file takes ~3 s each way, and kernel buffers hold well under 1 s of it (at
        # 6 MiB/s, ~2 s, a quick host once made the upload in 1.99 s: the bound failed).
        env = {**s3_env(f"http://127.0.0.1:{proxy.port}", s3_server), **TIGHT,
               "MODELBOX_STORE_READ_TIMEOUT": "2"}
        reg = new_registry(tmp_path / "reg", run)
        source = artifact(tmp_path / "model.bin", 12 << 20)
        started = time.monotonic()
        code, _, err = modelbox("--repo", reg, "artifact", "add", f"{MODEL}@v1", source,
                                env=env)
        assert code == 0, err
        assert time.monotonic() - started > 2  # slower than a read timeout, all the same
        env["MODELBOX_CACHE_DIR"] = str(tmp_path / "fresh-cache")
        code, _, err = modelbox("--repo", reg, "get", f"{MODEL}@v1", "-o", tmp_path / "out",
                                env=env)
        assert code == 0, err
        assert (tmp_path / "out" / "model.bin").read_bytes() == source.read_bytes()
    finally:
        proxy.close()
