"""The SeaweedFS helper's readiness probe: only an HTTP answer means the server is up."""

from __future__ import annotations

import socket
import threading

from s3server import _answers


def test_a_probe_that_reads_back_its_own_request_is_not_ready() -> None:
    """Before weed listens, a probe to a port in the ephemeral range can connect to itself
    and read its own request back (CI at 7471f59): that is "not ready", not a crash."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def echo_request_line() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"GET / HTTP/1.1\r\n\r\n")

        thread = threading.Thread(target=echo_request_line)
        thread.start()
        assert _answers(f"http://127.0.0.1:{port}/") is False
        thread.join(timeout=10)


def test_nothing_listening_is_not_ready() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: the connection is refused
        assert _answers(f"http://127.0.0.1:{port}/") is False
