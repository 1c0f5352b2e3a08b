"""Transfers of many objects to and from S3, as coroutines on s3fs's event loop.

Each request costs its botocore client CPU and nothing more: no thread hop per call, no
file object per download, no HEAD to learn a size the pointer already gives.

- Small objects (up to 8 MiB) are one ``GetObject`` / ``PutObject`` each,
  ``jobs`` objects at a time.
- A large object is downloaded as ranges of :data:`RANGE_SIZE`, several in flight. Each
  range is consumed in order as it arrives: hashed and appended to a temp file in the
  cache by a worker thread, so the hash is complete when the last byte lands. Ranges
  that arrive ahead of their turn wait in memory, within the byte budget.
- A large file is uploaded as a multipart upload, several parts in flight, read and hashed
  in order by a worker thread; the upload is completed only once every part is sent and
  the whole file was read and verified, and aborted otherwise (errors, Ctrl-C).

All transfers of one call share a byte budget for the content they hold in memory. A
small object's file is hashed, written and placed on the event loop itself (cheaper than a
thread hop); a large one's in a pool of threads, so that the loop never waits for a disk.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import email.utils
import errno
import hashlib
import itertools
import logging
import math
import os
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from modelbox.errors import ObjectMissingError, StoreError
from modelbox.objects import _aio, packs
from modelbox.objects._errors import (
    cleanup_errors,
    local_errors,
    names_missing_bucket,
    timed_out,
)
from modelbox.objects._files import AtomicFile
from modelbox.objects._layout import relative_key
from modelbox.objects._timeouts import Timeouts
from modelbox.objects.cache import check_received
from modelbox.objects.hashing import FileDigest, read_verified

if TYPE_CHECKING:
    from modelbox.objects._progress import Progress
    from modelbox.objects.cache import HashCache, ObjectCache

T = TypeVar("T")
logger = logging.getLogger(__name__)

PART_SIZE = 8 << 20
"""Bytes per multipart-upload part, and the largest object sent in a single PUT."""
WHOLE_SIZE = 8 << 20
"""The largest object fetched with one GET into memory; larger ones come in ranges."""
RANGE_SIZE = 16 << 20
"""Bytes per ranged GET of a large object."""
UPLOAD_BUDGET = 4 * PART_SIZE
"""Bytes of file content held in memory at once by the uploads of one call (aiohttp
copies each request body once more while it sends it)."""
DOWNLOAD_BUDGET = 3 * RANGE_SIZE
"""Bytes of object content held in memory at once by the downloads of one call."""
_PARTS_AHEAD = 4
"""Parts of one file in flight at once, budget permitting."""
_RANGES_AHEAD = 3
"""Ranges of one object in flight at once, budget permitting. Fewer, larger ranges cost
the client and the server less per byte than many small ones (measured on SeaweedFS:
16 MiB x 3 took ~15% less time than 8 MiB x 4)."""
_READ_SIZE = 1 << 20
"""Bytes asked for per read of a response body: fewer, larger reads cost less CPU."""
_INLINE = 256 << 10
"""Up to this size, a file is read or written on the event loop itself, not in a thread."""
_MAX_PARTS = 10_000  # S3's limit on the parts of one multipart upload
_RETRIES = 3
"""Times a GET interrupted while its body streams is resumed (requests retry on their own)."""
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


def part_size(size: int) -> int:
    """The part size for a multipart upload of ``size`` bytes: 8 MiB, more above 80 GB."""
    needed = math.ceil(size / _MAX_PARTS)
    return max(PART_SIZE, math.ceil(needed / (1 << 20)) << 20)


_SESSION_OPTIONS = ("profile", "session_vars", "event_hooks", "include_builtin_handlers")
"""The options s3fs hands to the botocore session it creates when it is given none."""


def client_options(options: dict[str, Any], timeouts: Timeouts) -> dict[str, Any]:
    """modelbox's defaults for an ``S3FileSystem``, on top of ``options`` (the user's win).

    - Connect and read timeouts and a bounded number of attempts (botocore's "standard"
      retry mode, unless ``AWS_RETRY_MODE`` names another) from ``timeouts``, and a stall
      watchdog on request bodies (:mod:`modelbox.objects._stall`).

    - botocore's own CRC32 of every body (the default since botocore 1.36) is turned off
      where S3 does not require it: modelbox checks the SHA-256 of everything it sends and
      receives, and the CRC costs CPU on every request and every byte.
    - The session parses timestamps (``Last-Modified`` on every response) with the
      standard library instead of dateutil: ~10% of the client CPU of a small GET.
    - An ``http://`` endpoint is not "verified": there is no TLS, and loading the CA
      bundle for nothing cost ~40 ms of every command that opens the store.

    Raises:
        ValueError, TypeError: the options cannot make a session.
    """
    from botocore.config import Config  # type: ignore[import-untyped]  # no stubs

    config: dict[str, Any] = {
        name: "when_required"
        for name in ("request_checksum_calculation", "response_checksum_validation")
        if name in Config.OPTION_DEFAULTS  # botocore < 1.36 has neither option
    }
    config["s3"] = {"payload_signing_enabled": False}
    config["connect_timeout"] = timeouts.connect
    config["read_timeout"] = timeouts.read
    retries: dict[str, Any] = {"total_max_attempts": timeouts.attempts}
    if not os.environ.get("AWS_RETRY_MODE"):
        retries["mode"] = "standard"
    config["retries"] = retries
    if _has_session_classes():
        from modelbox.objects._stall import WatchedSession

        config["http_session_cls"] = WatchedSession
    theirs = options.get("config_kwargs")
    if isinstance(theirs, dict):
        config.update(theirs)
    elif theirs is not None:
        config = theirs  # let s3fs say what is wrong with it
    merged = {**options, "config_kwargs": config}
    endpoint = merged.get("endpoint_url") or (merged.get("client_kwargs") or {}).get(
        "endpoint_url"
    )
    if isinstance(endpoint, str) and endpoint.lower().startswith("http://"):
        # No TLS to verify: aiobotocore would load the CA bundle all the same (~40 ms).
        merged["client_kwargs"] = {"verify": False, **(merged.get("client_kwargs") or {})}
    if merged.get("session") is None:
        from aiobotocore.session import AioSession  # type: ignore[import-untyped]  # no stubs

        session = AioSession(**{k: merged.pop(k) for k in _SESSION_OPTIONS if k in merged})
        factory = session.get_component("response_parser_factory")
        factory.set_parser_defaults(timestamp_parser=_parse_timestamp)
        merged["session"] = session
    return merged


def _has_session_classes() -> bool:
    """Whether aiobotocore takes ``http_session_cls`` in its config (2.15 and later)."""
    from aiobotocore import endpoint  # type: ignore[import-untyped]  # no stubs

    return hasattr(endpoint, "DEFAULT_HTTP_SESSION_CLS")


def effective_timeouts(options: dict[str, Any], timeouts: Timeouts) -> Timeouts:
    """The timeouts an ``S3FileSystem`` made from ``options`` (see :func:`client_options`)
    really uses: a user's ``config_kwargs`` may have replaced modelbox's."""
    config = options.get("config_kwargs")
    if not isinstance(config, dict):
        return timeouts
    retries = config.get("retries")
    attempts = timeouts.attempts
    if isinstance(retries, dict):
        total, extra = retries.get("total_max_attempts"), retries.get("max_attempts")
        if isinstance(total, int):
            attempts = total
        elif isinstance(extra, int):
            attempts = extra + 1  # botocore's max_attempts counts the retries only
    return Timeouts(
        connect=_number(config.get("connect_timeout"), timeouts.connect),
        read=_number(config.get("read_timeout"), timeouts.read),
        attempts=attempts,
    )


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) else default


def _parse_timestamp(value: Any) -> datetime.datetime:
    """botocore's ``parse_timestamp``, fast for the two forms S3 sends."""
    if isinstance(value, str):
        try:
            if value.endswith("GMT"):  # HTTP headers: "Mon, 23 Nov 2026 17:30:52 GMT"
                return email.utils.parsedate_to_datetime(value)
            if value.endswith("Z"):  # XML bodies: "2026-11-23T17:30:52.000Z"
                return datetime.datetime.fromisoformat(value[:-1] + "+00:00")
        except (TypeError, ValueError):
            pass
    from botocore.utils import parse_timestamp  # type: ignore[import-untyped]  # no stubs

    parsed: datetime.datetime = parse_timestamp(value)
    return parsed


class _WrongSize(Exception):  # noqa: N818 -- a signal inside this module, never raised out
    """A ranged GET showed that the object does not have the size its pointer says."""


class S3Bulk:
    """Bulk transfers for the S3 store at ``url`` (``root`` is ``bucket/prefix``)."""

    def __init__(self, fs: Any, url: str, root: str, timeouts: Timeouts | None = None) -> None:
        self.fs = fs
        self.url = url
        self.root = root
        self.timeouts = timeouts or Timeouts()
        self._bucket: str | None = None
        self._prefix = ""

    def upload(
        self, items: Sequence[tuple[Path, FileDigest]], progress: Progress, jobs: int
    ) -> None:
        with ThreadPoolExecutor(min(jobs, len(items)), "modelbox-upload") as pool:
            run = _Run(self, pool, progress)
            _aio.run(self.fs.loop, lambda: run.each(items, jobs, run.upload))

    def download(
        self,
        items: Sequence[tuple[str, int]],
        cache: ObjectCache,
        progress: Progress,
        jobs: int,
        placed: Callable[[str], None],
    ) -> None:
        with ThreadPoolExecutor(min(jobs, len(items)), "modelbox-download") as pool:
            run = _Run(self, pool, progress, cache, placed)
            _aio.run(self.fs.loop, lambda: run.each(items, jobs, run.download))

    def upload_packs(
        self,
        jobs_: Sequence[packs.PackJob],
        present: set[str],
        hashes: HashCache | None,
        progress: Progress,
        jobs: int,
    ) -> list[packs.Packed]:
        results: list[packs.Packed | None] = [None] * len(jobs_)
        # Building a pack is CPU work (reading from the page cache, hashing): more threads
        # than cores only contend, with each other and with the loop that sends.
        threads = min(jobs, len(jobs_), os.cpu_count() or 1)
        with ThreadPoolExecutor(threads, "modelbox-upload") as pool:
            run = _Run(self, pool, progress)

            async def store(index: int) -> None:
                results[index] = await run.upload_pack(jobs_[index], present, hashes)

            _aio.run(self.fs.loop, lambda: run.each(range(len(jobs_)), jobs, store))
        return [packed for packed in results if packed is not None]

    def download_packs(
        self,
        groups: Sequence[packs.Wanted],
        cache: ObjectCache,
        progress: Progress,
        jobs: int,
        placed: Callable[[str], None],
    ) -> None:
        with ThreadPoolExecutor(min(jobs, len(groups)), "modelbox-download") as pool:
            run = _Run(self, pool, progress, cache, placed)
            _aio.run(self.fs.loop, lambda: run.each(groups, jobs, run.download_pack))

    def split(self, digest: str) -> tuple[str, str]:
        """``(bucket, key)`` of the object ``digest``."""
        if self._bucket is None:
            # Once per store: s3fs's split_path tries several patterns (access point ARNs...).
            bucket, prefix, _ = self.fs.split_path(self.root)
            self._bucket, self._prefix = bucket, prefix.strip("/")
        key = relative_key(digest)
        return self._bucket, f"{self._prefix}/{key}" if self._prefix else key

    def location(self, digest: str) -> str:
        return f"{self.url}/{relative_key(digest)}"

    async def call(self, method: str, **kwargs: Any) -> Any:
        return await self.fs._call_s3(method, **kwargs)


class _Run:
    """One bulk call: its budget, its threads, its progress and (downloads) its cache."""

    def __init__(
        self,
        s3: S3Bulk,
        pool: ThreadPoolExecutor,
        progress: Progress,
        cache: ObjectCache | None = None,
        placed: Callable[[str], None] | None = None,
    ) -> None:
        self.s3 = s3
        self.pool = pool
        self.progress = progress
        self.cache = cache
        self.placed = placed
        self.budget = _aio.ByteBudget(DOWNLOAD_BUDGET if cache is not None else UPLOAD_BUDGET)
        self._writing: set[asyncio.Future[None]] = set()
        self._failed: BaseException | None = None

    async def each(self, items: Sequence[T], jobs: int, do: Callable[[T], Awaitable[None]]) -> None:
        """``do`` every item, ``jobs`` at a time; the first error cancels the others."""
        queue = iter(items)

        async def worker() -> None:
            for item in queue:
                if self._failed is not None:
                    raise self._failed
                await do(item)

        try:
            await _aio.gather_or_cancel(worker() for _ in range(min(jobs, len(items))))
        finally:
            if self._writing:
                await asyncio.wait(self._writing)
        if self._failed is not None:
            raise self._failed

    def _write_behind(self, taken: int, function: Callable[..., None], *args: Any) -> None:
        """Run ``function(*args)`` in the pool while the caller goes on with the next object;
        give ``taken`` bytes back to the budget when it is done. Its error fails the run."""
        waiter = asyncio.wrap_future(self.pool.submit(function, *args))
        self._writing.add(waiter)

        def done(future: asyncio.Future[None]) -> None:
            self._writing.discard(future)
            self.budget.release(taken)
            if not future.cancelled() and future.exception() is not None:
                self._failed = self._failed or future.exception()

        waiter.add_done_callback(done)

    # Downloads

    async def download(self, item: tuple[str, int]) -> None:
        digest, size = item
        bucket, key = self.s3.split(digest)
        try:
            if size <= WHOLE_SIZE:
                await self._download_whole(digest, size, bucket, key)
            else:
                await self._download_ranges(digest, size, bucket, key)
        except _WrongSize:
            await self._diagnose(digest, size, bucket, key)

    async def _download_whole(self, digest: str, size: int, bucket: str, key: str) -> None:
        taken = await self.budget.acquire(size)
        try:
            data = await self._get(digest, size, bucket, key)
        except BaseException:
            self.budget.release(taken)
            raise
        self.progress.advance(len(data))
        if size <= _INLINE:
            # Hashing and writing a small file costs less than handing it to a thread and
            # back (and the threads' contention for the GIL with the event loop).
            try:
                self._cache_whole(digest, size, data)
            finally:
                self.budget.release(taken)
        else:
            # Verified, cached and placed by a thread while this coroutine fetches the
            # next object: the event loop, which runs every request, does not wait.
            self._write_behind(taken, self._cache_whole, digest, size, data)

    async def download_pack(self, group: packs.Wanted) -> None:
        """Fetch the wanted span of a pack in one GET; a thread checks, caches and places
        its members while this coroutine goes on with the next pack."""
        size = group.end - group.start
        bucket, key = self.s3.split(group.pack)
        taken = await self.budget.acquire(size)
        try:
            try:
                data = b"" if not size else await self._get(
                    group.pack, size, bucket, key, start=group.start
                )
            except _WrongSize:
                await self._diagnose(group.pack, group.pack_size, bucket, key)
        except BaseException:
            self.budget.release(taken)
            raise
        self.progress.advance(size)
        self._write_behind(taken, self._unpack, group, data)

    def _unpack(self, group: packs.Wanted, data: bytes) -> None:
        packs.unpack(group, data, self.s3.location(group.pack), self._keep)

    def _keep(self, digest: str, content: bytes | memoryview) -> None:
        """Cache a verified object, then place it."""
        self._cache().add(digest, content)
        self._place(digest)

    def _cache_whole(self, digest: str, size: int, data: bytes) -> None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest or len(data) != size:
            check_received(digest, size, len(data), actual, self.s3.location(digest))
        self._keep(digest, data)

    async def _download_ranges(self, digest: str, size: int, bucket: str, key: str) -> None:
        bounds = [(start, min(start + RANGE_SIZE, size)) for start in range(0, size, RANGE_SIZE)]
        ranges: list[_Range] = []
        disk = _Serial(self.pool)
        hasher = hashlib.sha256()
        file = self._open_temp(digest)  # a few system calls: not worth a thread hop

        def start_next() -> None:
            if len(ranges) < len(bounds):
                start, end = bounds[len(ranges)]
                part = _Range()
                part.start(self._fetch_range(digest, bucket, key, start, end, size, part))
                ranges.append(part)

        try:
            for _ in range(_RANGES_AHEAD):
                start_next()
            for index in range(len(bounds)):
                current = ranges[index]
                while chunks := await current.take():
                    await disk.call(_append, file, hasher, chunks)
                    self.progress.advance(sum(len(chunk) for chunk in chunks))
                    del chunks
                self.budget.release(current.budget)
                current.budget = 0
                start_next()
            # Hashed in order as the ranges arrived: the digest is known at the last byte.
            check_received(digest, size, size, hasher.hexdigest(), self.s3.location(digest))
            await disk.call(self._publish, file, digest)
        finally:
            for current in ranges:
                await current.stop()
                self.budget.release(current.budget)
                current.budget = 0
            await disk.settle()
            file.discard()

    def _open_temp(self, digest: str) -> AtomicFile:
        cache = self._cache()
        target = cache.path(digest)
        with local_errors(str(cache.root)):
            cache.sweep(target.parent)
            return AtomicFile(target, readonly=True, durable=False)

    def _publish(self, file: AtomicFile, digest: str) -> None:
        with local_errors(str(self._cache().root)):
            file.publish()
        self._place(digest)

    async def _fetch_range(
        self, digest: str, bucket: str, key: str, start: int, end: int, total: int,
        part: _Range,
    ) -> None:
        """Fetch ``[start, end)`` of the object into ``part``, resuming a broken stream.

        Raises:
            _WrongSize: the object is not ``total`` bytes long.
        """
        part.budget = await self.budget.acquire(end - start)
        offset = start
        for attempt in itertools.count():
            try:
                response = await self._get_object(
                    digest, bucket, key, Range=f"bytes={offset}-{end - 1}"
                )
            except OSError as error:
                if error.errno == errno.EINVAL:  # s3fs's InvalidRange: the object is shorter
                    raise _WrongSize from error
                raise
            body = response["Body"]
            try:
                match = _CONTENT_RANGE.fullmatch(response.get("ContentRange", ""))
                if match is None or int(match[3]) != total:
                    raise _WrongSize
                while chunk := await body.read(_READ_SIZE):
                    offset += len(chunk)
                    if offset > end:
                        raise _WrongSize
                    part.put(chunk)
                if offset == end:
                    return
                raise _WrongSize
            except _retryable() as error:
                await _backoff(attempt, error)
            finally:
                body.close()

    async def _get(
        self, digest: str, size: int, bucket: str, key: str, *, start: int | None = None
    ) -> bytes:
        """The whole content of a small object of ``size`` bytes, or with ``start`` the
        ``size`` bytes from there.

        Raises:
            _WrongSize: the object is of another size, or too short for the range (it is
                not read into memory).
        """
        range_ = {} if start is None else {"Range": f"bytes={start}-{start + size - 1}"}
        for attempt in itertools.count():
            try:
                try:
                    response = await self._get_object(digest, bucket, key, **range_)
                except OSError as error:
                    if range_ and error.errno == errno.EINVAL:  # InvalidRange: too short
                        raise _WrongSize from error
                    raise
                body = response["Body"]
                try:
                    if response.get("ContentLength", size) != size:
                        raise _WrongSize
                    data: bytes = await body.read()
                finally:
                    body.close()
                return data
            except _retryable() as error:
                await _backoff(attempt, error)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _get_object(self, digest: str, bucket: str, key: str, **range_: str) -> Any:
        try:
            return await self.s3.call("get_object", Bucket=bucket, Key=key, **range_)
        except FileNotFoundError as error:
            if names_missing_bucket(error):
                raise  # the caller's errors() says the bucket is missing, not the object
            raise ObjectMissingError(digest, self.s3.url) from error

    async def _diagnose(self, digest: str, size: int, bucket: str, key: str) -> None:
        """Read the whole object to say precisely what is wrong with it.

        Raises:
            ObjectCorruptError: its content does not hash to ``digest`` (truncated...).
            InvalidValueError: it does, but ``size`` is not its size (the pointer is wrong).
            StoreError: neither: it changed while it was being read.
        """
        hasher = hashlib.sha256()
        received = 0
        response = await self._get_object(digest, bucket, key)
        body = response["Body"]
        try:
            while chunk := await body.read(_READ_SIZE):
                hasher.update(chunk)
                received += len(chunk)
        finally:
            body.close()
        check_received(digest, size, received, hasher.hexdigest(), self.s3.location(digest))
        raise StoreError(
            f"object sha256:{digest} changed in {self.s3.url} while it was downloaded; try again"
        )

    def _place(self, digest: str) -> None:
        if self.placed is not None:
            self.placed(digest)

    def _cache(self) -> ObjectCache:
        assert self.cache is not None, "a download needs a cache"
        return self.cache

    # Uploads

    async def upload_pack(
        self, job: packs.PackJob, present: set[str], hashes: HashCache | None
    ) -> packs.Packed:
        """Read the job's files into a pack (in a thread) and PUT it unless the store has it."""
        settled = packs.settled(job, present)
        if settled is not None:
            packed = settled
        else:
            async with self.budget.hold(job.size):
                packed, body = await _in_thread(self.pool, packs.build, job, hashes)
                if packed.sha256 not in present:
                    bucket, key = self.s3.split(packed.sha256)
                    if not await self._exists(bucket, key):
                        await self.s3.call(
                            "put_object", Bucket=bucket, Key=key, Body=body,
                            ChecksumSHA256=checksum(packed.sha256),
                        )
                del body
        self.progress.advance(job.size)
        self.progress.file_done(len(job.paths))
        return packed

    async def _exists(self, bucket: str, key: str) -> bool:
        try:
            await self.s3.call("head_object", Bucket=bucket, Key=key)
        except FileNotFoundError:
            return False  # (a missing bucket too: the PUT then says so)
        return True

    async def upload(self, item: tuple[Path, FileDigest]) -> None:
        path, digest = item
        bucket, key = self.s3.split(digest.sha256)
        if digest.size <= PART_SIZE:
            async with self.budget.hold(digest.size):
                if digest.size <= _INLINE:
                    data = _read_whole(path, digest)
                else:
                    data = await _in_thread(self.pool, _read_whole, path, digest)
                # One PUT: the object appears whole or not at all.
                await self.s3.call(
                    "put_object", Bucket=bucket, Key=key, Body=data,
                    ChecksumSHA256=checksum(digest.sha256),
                )
                del data
            self.progress.advance(digest.size)
        else:
            await self._multipart_upload(path, digest, bucket, key)
        self.progress.file_done()

    async def _multipart_upload(
        self, path: Path, digest: FileDigest, bucket: str, key: str
    ) -> None:
        size = part_size(digest.size)
        upload_id = await self._create_multipart_upload(bucket, key)
        etags: dict[int, tuple[str, str]] = {}
        sending: set[asyncio.Task[None]] = set()
        disk = _Serial(self.pool)
        completed = False
        with closing(read_verified(path, digest, size)) as chunks:
            try:
                # read_verified raises after the last chunk if the file changed, so a part
                # list that reaches complete_multipart_upload is always the verified content.
                for number in itertools.count(1):
                    taken = await self.budget.acquire(size)
                    try:
                        part = await disk.call(_next_part, chunks)
                    except BaseException:
                        self.budget.release(taken)
                        raise
                    if part is None:
                        self.budget.release(taken)
                        break
                    send = self._send_part(bucket, key, upload_id, number, part, taken, etags)
                    sending.add(asyncio.ensure_future(send))
                    del part
                    while len(sending) >= _PARTS_AHEAD:
                        done, sending = await asyncio.wait(
                            sending, return_when=asyncio.FIRST_COMPLETED
                        )
                        _aio.raise_first(done)
                if sending:
                    done, sending = await asyncio.wait(sending)
                    _aio.raise_first(done)
                parts = [
                    {"PartNumber": n, "ETag": etags[n][0], "ChecksumSHA256": etags[n][1]}
                    for n in sorted(etags)
                ]
                await self.s3.call(
                    "complete_multipart_upload",
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
                completed = True
            finally:
                for task in sending:
                    task.cancel()
                if sending:
                    await asyncio.wait(sending)
                    _aio.errors_of(sending)  # retrieved: the first error is on its way
                await disk.settle()  # the generator may not be closed while a thread reads it
                if not completed:
                    await asyncio.shield(self._abort(bucket, key, upload_id))

    async def _create_multipart_upload(self, bucket: str, key: str) -> str:
        """Start a multipart upload; if cancelled meanwhile, abort what the store started."""
        create = asyncio.ensure_future(
            self.s3.call(
                "create_multipart_upload", Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256"
            )
        )
        try:
            answer = await asyncio.shield(create)
        except asyncio.CancelledError:
            # The request may have reached the store already: an upload nobody aborts
            # would linger (billed, on S3) until a lifecycle rule reaps it.
            await asyncio.wait([create])
            if not create.cancelled() and create.exception() is None:
                await self._abort(bucket, key, create.result()["UploadId"])
            raise
        upload_id: str = answer["UploadId"]
        return upload_id

    async def _send_part(
        self, bucket: str, key: str, upload_id: str, number: int, part: tuple[bytes, str],
        taken: int, etags: dict[int, tuple[str, str]],
    ) -> None:
        chunk, checksum = part
        try:
            answer = await self.s3.call(
                "upload_part", Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                Body=chunk, ChecksumSHA256=checksum,
            )
            etags[number] = (answer["ETag"], checksum)
            self.progress.advance(len(chunk))
        finally:
            self.budget.release(taken)

    async def _abort(self, bucket: str, key: str, upload_id: str) -> None:
        # One attempt's worth of time: after a store that stopped answering, cleaning up
        # must not double the wait (botocore would retry the abort as often again).
        bound = self.s3.timeouts.connect + self.s3.timeouts.read
        try:
            await asyncio.wait_for(
                self.s3.call(
                    "abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id
                ),
                bound,
            )
        except cleanup_errors() as error:
            # The parts stay invisible; a bucket lifecycle rule (docs/store.md) reaps them.
            # A store that timed out was already reported as such: say it once.
            report = logger.debug if timed_out(error) else logger.warning
            report("could not abort the multipart upload of %s/%s: %s", bucket, key, error)


class _Range:
    """The chunks of one range of an object, passed from the coroutine that fetches them to
    the one that consumes the ranges in order."""

    def __init__(self) -> None:
        self.budget = 0
        """Bytes of the budget this range holds until it is consumed."""
        self._chunks: list[bytes] = []
        self._ready = asyncio.Event()
        self._task: asyncio.Future[None] | None = None

    def start(self, fetch: Awaitable[None]) -> None:
        self._task = asyncio.ensure_future(fetch)
        self._task.add_done_callback(lambda _: self._ready.set())

    def put(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._ready.set()

    async def take(self) -> list[bytes]:
        """The chunks received since the last call; ``[]`` once the range is complete.

        Raises:
            Whatever the fetch raised.
        """
        assert self._task is not None, "take() before start()"
        while not self._chunks and not self._task.done():
            self._ready.clear()
            await self._ready.wait()
        if self._chunks:
            taken, self._chunks = self._chunks, []
            return taken
        self._task.result()
        return []

    async def stop(self) -> None:
        """Cancel the fetch if it still runs, and wait for it."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
            if not self._task.cancelled():
                self._task.exception()  # retrieved: it is take()'s to report, or moot


class _Serial:
    """Calls to a thread pool, one at a time, that can be waited for after a cancellation."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self._pool = pool
        self._last: Future[Any] | None = None

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        self._last = self._pool.submit(function, *args)
        return await asyncio.wrap_future(self._last)

    async def settle(self) -> None:
        """Wait until the last call has finished, whatever its outcome."""
        if self._last is not None and not self._last.done():
            await asyncio.wait([asyncio.wrap_future(self._last)])


async def _in_thread(pool: ThreadPoolExecutor, function: Callable[..., T], *args: Any) -> T:
    return await _Serial(pool).call(function, *args)


def _append(file: AtomicFile, hasher: Any, chunks: list[bytes]) -> None:
    for chunk in chunks:
        hasher.update(chunk)
    file.stream.writelines(chunks)


def checksum(digest: str) -> str:
    """A SHA-256 digest as S3's ``x-amz-checksum-sha256`` header has it (base64)."""
    return base64.b64encode(bytes.fromhex(digest)).decode("ascii")


def _next_part(chunks: Iterator[bytes]) -> tuple[bytes, str] | None:
    """The next part of a multipart upload and its checksum (hashed here, in a thread)."""
    chunk = next(chunks, None)
    if chunk is None:
        return None
    return chunk, checksum(hashlib.sha256(chunk).hexdigest())


def _read_whole(path: Path, digest: FileDigest) -> bytes:
    with closing(read_verified(path, digest, max(digest.size, 1))) as chunks:
        return b"".join(chunks)


def _retryable() -> tuple[type[BaseException], ...]:
    """Errors after which a GET is worth resuming: the stream broke."""
    from botocore import exceptions  # type: ignore[import-untyped]  # botocore has no stubs
    from s3fs.core import S3_RETRYABLE_ERRORS

    return (*S3_RETRYABLE_ERRORS, exceptions.IncompleteReadError, exceptions.ResponseStreamingError)


async def _backoff(attempt: int, error: BaseException) -> None:
    if attempt >= _RETRIES or timed_out(error):
        # A timeout is not a broken stream: the store stopped answering, and botocore has
        # already retried the request itself as often as the policy allows.
        raise error
    logger.debug("resuming a download after %s", error)
    await asyncio.sleep(0.1 * 2**attempt)
