"""Issue 16, item 5: every Python modelbox claims (3.10 to 3.13).

Two faults showed only on newer interpreters, both because a traceback kept something
alive after an error until the garbage collector found the cycle:

* a failed pack read kept a view of the pack's ``BytesIO`` in a frame of its traceback:
  3.13 reports ``BufferError`` while collecting it, 3.12.1 crashes (CPython gh-111211);
* a failed dulwich HTTP command (a 404 from a URL that is no repository) kept the urllib3
  response, and its socket, open in a frame: one leaked socket per failed command.

Each test checks the cause directly, so it fails on any Python without the fix (3.10 and
3.11 included), and the subprocess ones also run the collector as the failing Pythons did.
``scripts/test.sh`` runs the whole suite on 3.13 and all but its stress and browser tiers on
3.10 (both under ``-X dev``), and the ``smoke`` tests, these among them, on the other
supported Pythons it finds.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from types import TracebackType

import pytest
from collab.collab_servers import Servers, git_servers

from modelbox.errors import ArtifactError
from modelbox.objects import packs
from modelbox.objects.hashing import FileDigest, hash_file

__all__ = ["git_servers"]

pytestmark = pytest.mark.smoke


def _frames_locals(exc: BaseException) -> list[object]:
    """Every local of every frame the exception (and its chain) keeps alive."""
    values: list[object] = []
    seen: BaseException | None = exc
    while seen is not None:
        tb: TracebackType | None = seen.__traceback__
        while tb is not None:
            values.extend(tb.tb_frame.f_locals.values())
            tb = tb.tb_next
        seen = seen.__cause__ or seen.__context__
    return values


def _files(root: Path, count: int, size: int) -> list[Path]:
    root.mkdir()
    paths = []
    for index in range(count):
        path = root / f"f{index}"
        path.write_bytes(os.urandom(size))
        paths.append(path)
    return paths


@pytest.mark.parametrize("known", ["pack digest known", "member digests only"])
def test_a_failed_pack_read_leaves_no_view_of_its_buffer_in_the_traceback(
    tmp_path: Path, known: str
) -> None:
    paths = _files(tmp_path / "src", 4, 1_000)
    digests: list[FileDigest | None] = [hash_file(path) for path in paths]
    if known == "pack digest known":
        # build() reads every file straight into the buffer, then finds a size changed.
        job = packs.PackJob(paths, [1_000] * 4, digests, sha256="0" * 64)
        paths[2].write_bytes(os.urandom(999))
    else:
        # build() reads file by file and finds one no longer hashes to its digest.
        job = packs.PackJob(paths, [1_000] * 4, digests)
        paths[2].write_bytes(os.urandom(1_000))

    with pytest.raises(ArtifactError, match="changed") as caught:
        packs.build(job, None)

    buffers = [value for value in _frames_locals(caught.value)
               if isinstance(value, io.BytesIO)]
    assert buffers, "the pack's buffer is in build()'s frame"
    for buffer in buffers:
        buffer.truncate(0)  # BufferError while any view of it is still exported
    views = [value for value in _frames_locals(caught.value)
             if isinstance(value, memoryview)]
    for view in views:
        with pytest.raises(ValueError, match="released"):
            len(view)


_COLLECT_A_FAILED_PACK = """
import gc, os, sys
from pathlib import Path
from modelbox.errors import ArtifactError
from modelbox.objects import packs
from modelbox.objects.hashing import FileDigest

root = Path(sys.argv[1])
paths = []
for index in range(3):
    path = root / f"f{index}"
    path.write_bytes(os.urandom(1000))
    paths.append(path)
job = packs.PackJob(paths, [1000] * 3, [FileDigest("0" * 64, 1000)] * 3)

def attempt():
    try:
        packs.build(job, None)
    except ArtifactError as exc:
        error = exc  # a frame that holds its own traceback: a cycle for the collector
        return error is not None

for _ in range(3):
    assert attempt()
gc.collect()
print("collected")
"""


def test_a_failed_pack_read_is_collected_without_a_crash_or_a_buffer_error(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-c", _COLLECT_A_FAILED_PACK, str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    # Without the fix: 3.12.1 dies with SIGSEGV, 3.13 prints "Exception ignored ... BufferError".
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "collected\n"
    assert "Exception ignored" not in done.stderr
    assert "BufferError" not in done.stderr


_FAIL_OVER_HTTP = """
import gc, os, sys, warnings
from pathlib import Path
from modelbox.errors import RemoteError
from modelbox.refs.remote import Remote
from modelbox.refs.repo import GitRepo

def sockets():
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{name}").startswith("socket:")
        except OSError:
            pass
    return count

repo = GitRepo.open(Path(sys.argv[1]))
gc.disable()  # what a command leaves open, not what the collector happens to close
before = sockets()
for _ in range(3):
    remote = Remote(repo, sys.argv[2])
    try:
        remote.ls()
    except RemoteError as exc:
        print(exc)
    else:
        raise SystemExit("the URL is no repository: ls() must fail")
    del remote
left = sockets() - before
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    gc.collect()
unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
print(f"left open: {left}; unclosed when collected: {len(unclosed)}")
"""


def test_a_failed_http_command_leaves_no_socket_open(
    git_servers: Servers, tmp_path: Path
) -> None:
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("counts descriptors in /proc/self/fd (Linux)")
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    url = f"http://127.0.0.1:{git_servers.http_port}/none.git"  # answers 404
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("GIT_", "MODELBOX_"))}
    env["MODELBOX_GIT_TRANSPORT"] = "dulwich"
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-c", _FAIL_OVER_HTTP, str(repo), url],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 4
    assert all("none.git" in line for line in lines[:3])
    assert lines[3] == "left open: 0; unclosed when collected: 0"


def test_a_z_suffixed_time_reads_as_utc_on_every_python() -> None:
    """Documents carry ``...Z``; Python 3.10's ``fromisoformat`` refuses it (3.11 reads
    it), and ``version list``, policies, ``resolve --at`` and ``event list --since`` failed
    on 3.10 until every reader went through :func:`modelbox.isotime.parse`."""
    from datetime import datetime, timezone

    from modelbox import isotime

    utc = datetime(2026, 12, 2, 10, 0, 0, 500000, tzinfo=timezone.utc)
    assert isotime.parse("2026-12-02T10:00:00.500000Z") == utc  # as modelbox writes them
    assert isotime.parse("2026-12-02T10:00:00.500z") == utc
    assert isotime.parse("2026-12-02T10:00:00.500000+00:00") == utc
    assert isotime.parse("2026-12-02T10:00:00Z") == utc.replace(microsecond=0)
    with pytest.raises(ValueError):
        isotime.parse("yesterday")


def test_no_reader_of_times_bypasses_isotime() -> None:
    """The 3.10 fault above, kept from coming back: ``datetime.fromisoformat`` is called
    only by ``modelbox/isotime.py`` (and by the S3 store's own parser, which handles the
    ``Z`` of S3's XML itself, on the objects layer's hot path)."""
    package = Path(__file__).resolve().parents[2] / "modelbox"
    allowed = {package / "isotime.py", package / "objects" / "_s3.py"}
    callers = sorted(str(path.relative_to(package)) for path in package.rglob("*.py")
                     if path not in allowed and "fromisoformat(" in path.read_text())
    assert callers == []
