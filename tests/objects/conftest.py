"""Fixtures for the object store: an isolated environment, a real S3 server, both stores."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from s3server import S3Server

from modelbox.objects import ObjectStore, open_store

BUCKET = "modelbox-test"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real cloud, no user configuration: strip AWS and fsspec variables, fake HOME.

    tests/conftest.py does most of this already; repeated here so that these tests stay
    sealed whatever happens there, plus what only the store needs.
    """
    for name in list(os.environ):
        if name.startswith(("AWS_", "FSSPEC_", "MODELBOX_")):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("MODELBOX_CACHE_DIR", str(tmp_path / "cache" / "modelbox"))


# The session fixture ``s3_server`` (a SeaweedFS from tests/s3server.py) comes from
# tests/conftest.py, so that the whole suite shares one server.


@pytest.fixture(scope="session")
def s3_bucket(s3_server: S3Server) -> str:
    """The bucket these tests use, created once per session."""
    s3_server.create_bucket(BUCKET)
    return BUCKET


@pytest.fixture
def s3_env(s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """Point the AWS variables of this test at the SeaweedFS, which has ``BUCKET``."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server


@pytest.fixture(params=["local", "s3"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store: a local folder, or a prefix of the SeaweedFS bucket."""
    if request.param == "local":
        return str(tmp_path / "store")
    request.getfixturevalue("s3_env")
    return f"s3://{BUCKET}/{uuid.uuid4().hex}"


@pytest.fixture
def store(store_url: str) -> ObjectStore:
    return open_store(store_url)


@pytest.fixture
def overwrite(request: pytest.FixtureRequest) -> Callable[[str, bytes], None]:
    """Replace an object's bytes behind the store's back, wherever the store is."""

    def overwrite(location: str, data: bytes) -> None:
        if location.startswith("s3://"):
            server: S3Server = request.getfixturevalue("s3_server")
            server.client().pipe_file(location, data)
        else:
            path = Path(location)
            path.chmod(0o644)
            path.write_bytes(data)

    return overwrite
