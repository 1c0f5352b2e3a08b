"""A stall watchdog for S3 requests that send a body (PUT, UploadPart).

aiohttp's read timeout starts only once a request's body is sent. A server that stops
answering while we send (a frozen process, a dead peer behind a live proxy) leaves the
request waiting forever: for the ``100 Continue`` botocore asks for, or for the kernel to
take more bytes. This HTTP session for aiobotocore sends each body in slices and ends the
attempt with botocore's ``ReadTimeoutError`` when no slice went out for the read timeout;
botocore then retries it like any other timeout, within the attempts of the policy.

A slow but live server is not a stall: each slice accepted restarts the clock.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from typing import Any

from aiobotocore.httpsession import AIOHTTPSession  # type: ignore[import-untyped]  # no stubs

_SLICE = 1 << 20
"""Bytes handed to aiohttp at a time: each one accepted is progress."""


class _Flow:
    """The body of one request, sent in slices, with when the last one went out."""

    def __init__(self, body: io.BytesIO | bytes | bytearray) -> None:
        self.body = io.BytesIO(body) if isinstance(body, (bytes, bytearray)) else body
        self.moved = time.monotonic()
        self.done = False

    async def slices(self) -> AsyncIterator[bytes]:
        while chunk := self.body.read(_SLICE):
            self.moved = time.monotonic()
            yield chunk
        self.moved = time.monotonic()
        self.done = True


class WatchedSession(AIOHTTPSession):  # type: ignore[misc]  # its base is untyped
    """aiobotocore's aiohttp session, with a stall watchdog on request bodies."""

    async def send(self, request: Any) -> Any:
        body = request.body
        stall = self._timeout.sock_read
        # botocore hands a PUT's content over as a BytesIO (rewound before each attempt).
        if not isinstance(body, (io.BytesIO, bytes, bytearray)) or not body or not stall:
            return await super().send(request)  # (a BytesIO is truthy even when empty)
        flow = _Flow(body)
        request.body = flow.slices()
        try:
            sending = asyncio.ensure_future(super().send(request))
            try:
                while not flow.done:
                    left = flow.moved + stall - time.monotonic()
                    if left <= 0:
                        raise _timeout(request.url, stall)
                    finished, _ = await asyncio.wait([sending], timeout=left)
                    if finished:
                        break
                return await sending
            finally:
                if not sending.done():
                    sending.cancel()
                    await asyncio.wait([sending])
        finally:
            request.body = body  # what botocore rewinds and sends again on a retry


def _timeout(url: str, seconds: float) -> Exception:
    from botocore.exceptions import ReadTimeoutError  # type: ignore[import-untyped]  # no stubs

    error: Exception = ReadTimeoutError(
        endpoint_url=url, error=f"no byte of the request body went out for {seconds:g} s"
    )
    return error
