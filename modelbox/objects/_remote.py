"""A store at an fsspec URL (``s3://``, ``gs://``, ``memory://``...).

Storage options come from the environment only: the standard variables of each protocol's
SDK, plus fsspec's own configuration (``FSSPEC_<PROTOCOL>[_<OPTION>]`` variables and
``~/.config/fsspec``), which overrides the defaults chosen here.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, closing
from pathlib import Path
from typing import Any

from modelbox.errors import InvalidValueError
from modelbox.objects._backend import Bulk, Reader
from modelbox.objects._errors import cleanup_errors, fsspec_errors, timed_out
from modelbox.objects._layout import digest_of
from modelbox.objects._malloc import pin_mmap_threshold
from modelbox.objects._s3 import (
    PART_SIZE,
    UPLOAD_BUDGET,
    S3Bulk,
    checksum,
    client_options,
    effective_timeouts,
    part_size,
)
from modelbox.objects._s3check import check_s3_options
from modelbox.objects._timeouts import Timeouts, from_environment
from modelbox.objects.hashing import FileDigest, read_verified

logger = logging.getLogger(__name__)

_FEW = 32
"""Up to this many keys, ``existing`` asks about each; above, it lists the store once."""
_EXISTS_JOBS = 8
_HTTP = frozenset({"http", "https"})
_BUFFER_BUDGET = UPLOAD_BUDGET
"""Bytes of object content held in memory at once by all transfers of one store.

Each buffer costs about twice its size while it is sent (aiohttp copies the body), so this
keeps a store's transfers near 100 MiB whatever the number of jobs.
"""


def open_remote(url: str) -> FsspecBackend:
    """Open the fsspec filesystem for ``url``, configured from the environment.

    Raises:
        InvalidValueError: the URL's protocol is unknown or its package is not installed.
    """
    import fsspec
    import fsspec.core

    protocol = url.split("://", 1)[0].lower()
    try:
        cls = fsspec.get_filesystem_class(protocol)
    except (ValueError, ImportError) as error:
        raise InvalidValueError(f"cannot use the store {url}: {error}") from error
    protocols = cls.protocol if isinstance(cls.protocol, (tuple, list)) else (cls.protocol,)
    timeouts = from_environment()
    options = _default_options(protocols, timeouts)
    configured = _fsspec_config(protocols)
    ours, theirs = options.get("client_kwargs"), configured.get("client_kwargs")
    if isinstance(ours, dict) and isinstance(theirs, dict):
        configured["client_kwargs"] = {**ours, **theirs}  # the user's keys win one by one
    options.update(configured)
    if "s3" in protocols:
        check_s3_options(options)
    client_kwargs = options.get("client_kwargs") or {}
    endpoint = options.get("endpoint_url") or client_kwargs.get("endpoint_url")
    try:
        if "s3" in protocols:
            options = client_options(options, timeouts)
            timeouts = effective_timeouts(options, timeouts)
        elif not _HTTP.isdisjoint(protocols):
            timeouts = Timeouts(timeouts.connect, timeouts.read, 1)  # fsspec's HTTP: no retries
        fs, root = fsspec.core.url_to_fs(url, **options)
    except (ValueError, TypeError) as error:
        raise InvalidValueError(f"cannot use the store {url}: {error}") from error
    if "s3" in protocols:
        # s3fs retries a timed-out request 5 times on top of botocore's own attempts (25
        # tries of a silent endpoint, 15 s each by default): botocore's attempts suffice.
        fs.retries = 1
    pin_mmap_threshold()
    return FsspecBackend(fs, url.rstrip("/"), root.rstrip("/"), protocol, endpoint, timeouts)


def _fsspec_config(protocols: Iterable[str]) -> dict[str, Any]:
    """fsspec's configuration for these protocols as the environment says *now*.

    fsspec reads its files and ``FSSPEC_*`` variables once, when it is imported; read them
    again so that a long-lived process (or a test) sees the current environment.
    """
    import fsspec.config

    conf: dict[str, dict[str, Any]] = {}
    default_dir = os.path.join(os.path.expanduser("~"), ".config", "fsspec")
    fsspec.config.set_conf_files(os.environ.get("FSSPEC_CONFIG_DIR", default_dir), conf)
    fsspec.config.set_conf_env(conf)
    merged: dict[str, Any] = {}
    for name in protocols:
        merged.update(conf.get(name, {}))
    return merged


def _default_options(protocols: Iterable[str], timeouts: Timeouts) -> dict[str, Any]:
    options: dict[str, Any] = {"skip_instance_cache": True, "use_listings_cache": False}
    if not _HTTP.isdisjoint(protocols):
        import aiohttp

        # fsspec's HTTP filesystem hands client_kwargs to aiohttp.ClientSession, whose
        # default (5 minutes in all, no read timeout) would let a silent server hold a
        # transfer for minutes or, through a slow trickle, forever.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeouts.connect, sock_read=timeouts.read
        )
        options["client_kwargs"] = {"timeout": timeout}
    if "s3" not in protocols:
        return options
    options.update(
        # s3fs defaults to 50 MiB blocks and 10 parts in flight per file (~1 GiB for one
        # large file); modelbox streams its own parts, but keep fsspec's own paths small.
        default_block_size=PART_SIZE,
        default_cache_type="none",
        max_concurrency=1,
        fixed_upload_size=True,
    )
    # botocore >= 1.31 reads AWS_ENDPOINT_URL[_S3] itself; pass it on so that older
    # releases allowed by our requirements reach the same endpoint.
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["endpoint_url"] = endpoint
    # botocore reads only AWS_DEFAULT_REGION; the other SDKs (and users) also set AWS_REGION.
    region = os.environ.get("AWS_REGION")
    if region and not os.environ.get("AWS_DEFAULT_REGION"):
        options["client_kwargs"] = {"region_name": region}
    return options


class FsspecBackend:
    """Objects in an fsspec filesystem under ``root`` (the URL without its protocol)."""

    def __init__(
        self, fs: Any, url: str, root: str, protocol: str, endpoint: str | None,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.fs = fs
        self.url = url
        self.root = root
        self.protocol = protocol
        self.endpoint = endpoint
        self.timeouts = timeouts or Timeouts()
        protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
        self._is_s3 = "s3" in protocols
        self.bulk: Bulk | None = S3Bulk(fs, url, root, self.timeouts) if self._is_s3 else None
        self.read_size = PART_SIZE
        self._budget = _ByteBudget(_BUFFER_BUDGET)

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}" if self.root else key

    def location(self, key: str) -> str:
        return f"{self.url}/{key}"

    def errors(self) -> AbstractContextManager[None]:
        return fsspec_errors(self.url, self.protocol, self.endpoint, self.timeouts)

    def existing(self, keys: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(keys))
        if len(wanted) > _FEW:
            # One paginated listing (1,000 keys a request on S3) instead of a request each.
            present = set(self.list_keys(os.path.commonpath(wanted)))
            return {key for key in wanted if key in present}
        with ThreadPoolExecutor(max_workers=_EXISTS_JOBS) as pool:
            found = list(pool.map(lambda key: self.fs.exists(self._path(key)), wanted))
        return {key for key, exists in zip(wanted, found, strict=True) if exists}

    def list_keys(self, prefix: str) -> Iterator[str]:
        top = self._path(prefix).strip("/")
        if self._is_s3 and self.root:
            # With ``prefix``, s3fs lists once and does not HEAD the path when nothing is there.
            found = self.fs.find(self.root, prefix=f"{prefix}/")
        else:
            found = self.fs.find(self._path(prefix))
        for path in found:
            relative = path.strip("/")
            if relative.startswith(top + "/"):
                yield relative[len(self.root.strip("/")) :].lstrip("/")

    def list_ages(self, prefix: str) -> Iterator[tuple[str, float]]:
        top = self._path(prefix).strip("/")
        if self._is_s3 and self.root:
            found = self.fs.find(self.root, prefix=f"{prefix}/", detail=True)
        else:
            found = self.fs.find(self._path(prefix), detail=True)
        for path, info in found.items():
            relative = path.strip("/")
            if relative.startswith(top + "/"):
                key = relative[len(self.root.strip("/")) :].lstrip("/")
                yield key, _modified(info)

    def upload(
        self, source: Path, expected: FileDigest, key: str, advance: Callable[[int], None]
    ) -> None:
        size = part_size(expected.size)
        with closing(read_verified(source, expected, size)) as chunks:
            if expected.size <= PART_SIZE:
                # One PUT: the object appears whole or not at all.
                with self.buffer(expected.size):
                    data = b"".join(chunks)
                    self.fs.pipe_file(self._path(key), data)
                advance(expected.size)
            elif self._is_s3:
                self._multipart_upload(chunks, size, key, advance)
            else:
                self._upload_via_temp(chunks, key, advance)

    def _multipart_upload(
        self, chunks: Iterator[bytes], part_size: int, key: str, advance: Callable[[int], None]
    ) -> None:
        bucket, name, _ = self.fs.split_path(self._path(key))
        upload = self.fs.call_s3("create_multipart_upload", Bucket=bucket, Key=name)
        upload_id = upload["UploadId"]
        completed = False
        try:
            parts = []
            # read_verified raises after the last chunk if the source changed, so a part
            # list that reaches complete_multipart_upload is always the verified content.
            for number in itertools.count(1):
                with self.buffer(part_size):
                    chunk = next(chunks, None)
                    if chunk is None:
                        break
                    answer = self.fs.call_s3(
                        "upload_part",
                        Bucket=bucket,
                        Key=name,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=chunk,
                    )
                    size = len(chunk)
                    del chunk  # free the part before reading the next one
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                advance(size)
            self.fs.call_s3(
                "complete_multipart_upload",
                Bucket=bucket,
                Key=name,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
            completed = True
        finally:
            if not completed:
                self._abort(bucket, name, upload_id)

    def _abort(self, bucket: str, name: str, upload_id: str) -> None:
        try:
            self.fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=name, UploadId=upload_id)
        except cleanup_errors() as error:
            # The parts stay invisible; a bucket lifecycle rule (docs/store.md) reaps them.
            # A store that timed out was already reported as such: say it once.
            report = logger.debug if timed_out(error) else logger.warning
            report("could not abort the multipart upload of %s/%s: %s", bucket, name, error)

    def _upload_via_temp(
        self, chunks: Iterator[bytes], key: str, advance: Callable[[int], None]
    ) -> None:
        # Filesystems without multipart semantics may show a file while it is being
        # written: write it under tmp/ and move it into place once verified.
        temp = self._path(f"tmp/{secrets.token_hex(16)}")
        moved = False
        try:
            with self.fs.open(temp, "wb") as stream:
                for chunk in chunks:
                    stream.write(chunk)
                    advance(len(chunk))
            self.fs.mv(temp, self._path(key))
            moved = True
        finally:
            if not moved:
                with contextlib.suppress(*cleanup_errors()):
                    self.fs.rm_file(temp)

    def buffer(self, size: int) -> AbstractContextManager[None]:
        return self._budget.hold(size)

    def write_bytes(self, key: str, data: bytes | bytearray) -> None:
        digest = digest_of(key) if self._is_s3 else None
        # S3 checks the body against the checksum: with payload signing off, that is what
        # protects it in transit over plain HTTP.
        extra = {} if digest is None else {"ChecksumSHA256": checksum(digest)}
        self.fs.pipe_file(self._path(key), data, **extra)

    def read_bytes(self, key: str) -> bytes:
        data: bytes = self.fs.cat_file(self._path(key))
        return data

    def open_read(self, key: str, size: int | None = None) -> Reader:
        # No read-ahead cache: each read(read_size) is one ranged GET, nothing more is held.
        # A known size spares the HEAD request s3fs would send to learn it (one round trip
        # per object: half the requests of a folder of small files).
        if size is None or not self._is_s3:
            reader: Reader = self.fs.open(self._path(key), "rb", cache_type="none")
        else:
            reader = self.fs.open(self._path(key), "rb", cache_type="none", size=size)
        return reader

    def delete(self, keys: Iterable[str]) -> None:
        paths = [self._path(key) for key in keys]
        if not paths:
            return
        try:
            self.fs.rm(paths)
        except FileNotFoundError:
            for path in paths:
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm_file(path)


class _ByteBudget:
    """A semaphore counted in bytes: holders of more than the limit are let in alone."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0
        self._condition = threading.Condition()

    @contextlib.contextmanager
    def hold(self, size: int) -> Iterator[None]:
        size = min(size, self._limit)
        with self._condition:
            while self._used + size > self._limit:
                self._condition.wait()
            self._used += size
        try:
            yield
        finally:
            with self._condition:
                self._used -= size
                self._condition.notify_all()


def _modified(info: dict[str, Any]) -> float:
    """When an object was written, from whatever its filesystem reports (0: unknown)."""
    value = info.get("LastModified") or info.get("mtime") or info.get("updated") or 0
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
