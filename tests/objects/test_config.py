"""Where an S3 store takes its settings from: the environment, and nothing else."""

from __future__ import annotations

import socket

import pytest
from s3server import S3Server

from modelbox.objects import open_store

from .conftest import BUCKET


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_aws_endpoint_url_selects_the_server(s3_env: S3Server) -> None:
    store = open_store(f"s3://{BUCKET}/endpoint")
    digest = store.put_bytes(b"hello")
    assert store.open_bytes(digest) == b"hello"
    assert s3_env.client().cat_file(store.key(digest)) == b"hello"


def test_fsspec_configuration_overrides_the_aws_variables(
    s3_env: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("FSSPEC_S3_ENDPOINT_URL", s3_env.endpoint)
    store = open_store(f"s3://{BUCKET}/fsspec-config")
    assert store.open_bytes(store.put_bytes(b"via fsspec")) == b"via fsspec"


def test_aws_region_is_honoured_when_aws_default_region_is_unset(
    s3_env: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    store = open_store(f"s3://{BUCKET}/region")
    store.put_bytes(b"anywhere")
    assert store._backend.fs.s3.meta.region_name == "eu-west-3"  # type: ignore[attr-defined]


def test_botocore_checksums_are_off_unless_the_configuration_says_otherwise(
    s3_env: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = open_store(f"s3://{BUCKET}/checksums")._backend.fs  # type: ignore[attr-defined]
    assert fs.config_kwargs["response_checksum_validation"] == "when_required"
    assert fs.config_kwargs["request_checksum_calculation"] == "when_required"
    monkeypatch.setenv(
        "FSSPEC_S3", '{"config_kwargs": {"request_checksum_calculation": "when_supported"}}'
    )
    fs = open_store(f"s3://{BUCKET}/checksums")._backend.fs  # type: ignore[attr-defined]
    assert fs.config_kwargs["request_checksum_calculation"] == "when_supported"
    assert fs.config_kwargs["response_checksum_validation"] == "when_required"


def test_an_aws_profile_from_the_fsspec_configuration_reaches_the_session(
    s3_env: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FSSPEC_S3_PROFILE", "no-such-profile")
    store = open_store(f"s3://{BUCKET}/profile")
    assert store._backend.fs.session.profile == "no-such-profile"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "value",
    ["Mon, 23 Nov 2026 17:30:52 GMT", "2026-11-23T17:30:52.000Z", "2026-11-23T17:30:52Z",
     "1795459921", "2026-11-23T17:30:52+01:00"],
)
def test_timestamps_parse_as_botocore_parses_them(value: str) -> None:
    from botocore.utils import parse_timestamp  # type: ignore[import-untyped]  # no stubs

    from modelbox.objects._s3 import _parse_timestamp

    assert _parse_timestamp(value) == parse_timestamp(value)
