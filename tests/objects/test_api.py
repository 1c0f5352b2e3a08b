"""The public surface of modelbox.objects, and what it costs to import."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import modelbox.objects
from modelbox.objects import hash_file, open_store


def test_the_public_names_are_exactly_these() -> None:
    assert sorted(modelbox.objects.__all__) == [
        "FileDigest",
        "HashCache",
        "ObjectStore",
        "default_cache_dir",
        "hash_file",
        "open_store",
    ]
    assert all(hasattr(modelbox.objects, name) for name in modelbox.objects.__all__)


def test_importing_the_store_does_not_import_fsspec_or_tqdm() -> None:
    code = (
        "import sys, modelbox.objects; "
        "loaded = [m for m in ('fsspec', 's3fs', 'botocore', 'tqdm') if m in sys.modules]; "
        "sys.exit(str(loaded) if loaded else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_file_url_opens_a_local_store(tmp_path: Path) -> None:
    store = open_store((tmp_path / "store").as_uri())
    assert store.url == str(tmp_path / "store")


def test_any_fsspec_store_works_through_the_generic_path(tmp_path: Path) -> None:
    # memory:// has no multipart upload: large files go through a temp key and a move.
    store = open_store(f"memory://modelbox-{uuid.uuid4().hex}")
    small, large = tmp_path / "small.bin", tmp_path / "large.bin"
    small.write_bytes(b"small")
    large.write_bytes(os.urandom(9 << 20))
    items = [(small, hash_file(small)), (large, hash_file(large))]
    assert store.put_files(items) == 2
    assert store.put_files(items) == 0
    store.get_files([(d.sha256, d.size, tmp_path / "out" / p.name) for p, d in items])
    assert (tmp_path / "out" / "large.bin").read_bytes() == large.read_bytes()
    assert set(store.iter_digests()) == {d.sha256 for _, d in items}
    digest = store.put_bytes(b"{}")
    assert digest == hashlib.sha256(b"{}").hexdigest()
    assert store.open_bytes(digest) == b"{}"
    store.delete([digest])
    assert store.missing([digest]) == {digest}
