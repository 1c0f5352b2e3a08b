"""What the user is told when the store cannot be used."""

from __future__ import annotations

import hashlib
import re
import socket
import time
from pathlib import Path

import pytest
from s3server import S3Server

from modelbox.errors import (
    InvalidValueError,
    StoreAccessError,
    StoreError,
    StoreUnreachableError,
)
from modelbox.objects import hash_file, open_store

from .conftest import BUCKET

DIGEST = hashlib.sha256(b"anything").hexdigest()


def test_wrong_s3_keys_are_refused_with_a_message_naming_the_store(
    s3_env: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    store = open_store(f"s3://{BUCKET}/wrong-keys")
    with pytest.raises(StoreAccessError) as caught:
        store.missing([DIGEST])
    message = str(caught.value)
    assert f"s3://{BUCKET}/wrong-keys" in message
    assert "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE" in message


def test_an_unknown_access_key_is_refused_on_upload(
    s3_env: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWN")
    path = tmp_path / "x.bin"
    path.write_bytes(b"x")
    store = open_store(f"s3://{BUCKET}/unknown-key")
    with pytest.raises(StoreAccessError, match="was refused"):
        store.put_files([(path, hash_file(path))])


def test_missing_credentials_say_where_to_put_them(
    s3_env: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StoreAccessError, match="AWS_PROFILE"):
        open_store(f"s3://{BUCKET}/no-credentials").missing([DIGEST])


def test_credentials_can_come_from_an_aws_profile(
    s3_env: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[ci]\naws_access_key_id = {s3_env.access_key}\n"
        f"aws_secret_access_key = {s3_env.secret_key}\n"
    )
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_PROFILE", "ci")
    store = open_store(f"s3://{BUCKET}/profile")
    digest = store.put_bytes(b"via a profile")
    assert store.open_bytes(digest) == b"via a profile"


def test_an_unreachable_endpoint_is_reported_quickly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    started = time.monotonic()
    with pytest.raises(StoreUnreachableError) as caught:
        open_store("s3://bucket/prefix").missing([DIGEST])
    assert time.monotonic() - started < 10
    assert "s3://bucket/prefix" in str(caught.value)
    assert f"127.0.0.1:{port}" in str(caught.value)


def test_a_bucket_that_does_not_exist_is_named(s3_env: S3Server, tmp_path: Path) -> None:
    store = open_store("s3://no-such-bucket-here/prefix")
    with pytest.raises(StoreError, match="no-such-bucket-here"):
        store.get_files([(DIGEST, 8, tmp_path / "x")])


def test_an_unknown_protocol_is_an_invalid_value() -> None:
    with pytest.raises(InvalidValueError, match="nosuchproto"):
        open_store("nosuchproto://x/y")


def test_a_local_store_that_cannot_be_written_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "store"
    blocker.write_text("a file where the store folder should be")
    path = tmp_path / "x.bin"
    path.write_bytes(b"x")
    with pytest.raises(StoreError, match=re.escape(str(blocker))):
        open_store(str(blocker)).put_files([(path, hash_file(path))])
