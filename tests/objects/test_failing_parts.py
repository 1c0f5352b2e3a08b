"""An S3 endpoint that starts a multipart upload and then fails every part it is sent.

Several parts are in flight at once, so several fail together: the upload must end with
one error and an aborted upload, and none of the other failures may be left for asyncio
to report as lost ("Task exception was never retrieved", several lines on stderr of a
watcher that goes on running)."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from modelbox.errors import StoreError
from modelbox.objects import hash_file, open_store

_UPLOAD_ID = "upload-1"


class _FailingParts(BaseHTTPRequestHandler):
    """Just enough of S3 to reach the parts: nothing exists, uploads start, parts fail."""

    protocol_version = "HTTP/1.1"
    aborted: ClassVar[list[str]] = []
    # The parts in flight are answered together, as a failing disk answers them.
    together = threading.Barrier(4, timeout=5)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _drain(self) -> None:
        left = int(self.headers.get("Content-Length") or 0)
        while left > 0:
            left -= len(self.rfile.read(min(left, 1 << 20)))

    def do_HEAD(self) -> None:
        self._reply(404)

    def do_GET(self) -> None:
        self._reply(200, b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult>'
                         b"<KeyCount>0</KeyCount><IsTruncated>false</IsTruncated>"
                         b"</ListBucketResult>")

    def do_POST(self) -> None:
        self._drain()
        bucket, _, key = self.path.split("?")[0].lstrip("/").partition("/")
        self._reply(200, (f'<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUpload'
                          f"Result><Bucket>{bucket}</Bucket><Key>{key}</Key><UploadId>"
                          f"{_UPLOAD_ID}</UploadId></InitiateMultipartUploadResult>").encode())

    def do_PUT(self) -> None:
        self._drain()
        with contextlib.suppress(threading.BrokenBarrierError):
            self.together.wait()
        self._reply(500, b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError'
                         b"</Code><Message>We encountered an internal error, please try "
                         b"again.</Message></Error>")

    def do_DELETE(self) -> None:
        self.aborted.append(self.path)
        self._reply(204)


@pytest.fixture
def failing_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FailingParts)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "key",
                        "AWS_SECRET_ACCESS_KEY": "secret", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_MAX_ATTEMPTS": "1"}.items():
        monkeypatch.setenv(name, value)
    _FailingParts.aborted = []
    _FailingParts.together.reset()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()


def test_parts_failing_together_end_in_one_error_and_an_aborted_upload(
    failing_endpoint: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(48 << 20))  # six parts of 8 MiB: four in flight at once
    digest = hash_file(path)
    store = open_store("s3://bucket/prefix")
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        with pytest.raises(StoreError) as raised:
            store.put_files([(path, digest)])
        message = str(raised.value)
        del raised  # its traceback holds the upload's frames, and so its tasks
        gc.collect()  # a task nobody retrieved reports its error as it is collected
    assert "\n" not in message
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []
    assert any(f"uploadId={_UPLOAD_ID}" in aborted for aborted in _FailingParts.aborted)
