"""The ``git`` program, for the transfers and history walks that dulwich does slowly.

dulwich builds, sends and indexes packs in pure Python: pushing or cloning a registry of
10,000 versions took ~45 s, against ~3 s for git. When git 2.29 or newer is on PATH,
:mod:`modelbox.refs.remote` hands it that work. ``MODELBOX_GIT_TRANSPORT`` chooses:

* ``auto`` (the default): the git program when there is one, else dulwich;
* ``git``: the git program, and an error without it;
* ``dulwich``: dulwich only (the tests run both ways).

git never waits for a person: ``GIT_TERMINAL_PROMPT=0``, stdin closed, and ssh in
``BatchMode`` unless the user chose an ssh command. What git prints on failure becomes one
:class:`RemoteError` line in :func:`remote_error` only.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from modelbox.errors import GitError, InvalidValueError, RemoteError
from modelbox.refs.gitenv import SWITCH, environment

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

__all__ = [
    "SWITCH",
    "Job",
    "Output",
    "PushStatus",
    "adopt_history",
    "changed_files",
    "checkout",
    "clone",
    "clone_history",
    "environment",
    "fetch",
    "git_program",
    "held_interrupts",
    "is_ancestor",
    "ls_remote",
    "merge_base",
    "messages",
    "new_entries",
    "push",
    "refs_under",
    "remote_error",
    "rev_list",
    "run",
    "tree_entries",
    "tree_files",
    "unshallow",
    "update_refs",
]

_CHOICES = ("auto", "git", "dulwich")
_MIN_VERSION = (2, 29)  # fetch --stdin and --no-write-fetch-head
_PROGRESS = re.compile(rb"^(remote: )?[A-Z][A-Za-z ]+:\s+\d+% \(\d+/\d+\)")


def git_program() -> str | None:
    """The git to run, or None when dulwich does the work (see the module docstring).

    Raises:
        InvalidValueError: ``MODELBOX_GIT_TRANSPORT`` holds something else.
        GitError: it says ``git`` and no usable git is on PATH.
    """
    choice = os.environ.get(SWITCH, "").strip().lower() or "auto"
    if choice not in _CHOICES:
        raise InvalidValueError(
            f"{SWITCH}={os.environ[SWITCH]!r} is not one of {', '.join(_CHOICES)}; "
            "unset it to let modelbox choose"
        )
    if choice == "dulwich":
        return None
    found = _find(os.environ.get("PATH", os.defpath))
    if found is None and choice == "git":
        raise GitError(
            f"{SWITCH}=git, but no git {'.'.join(map(str, _MIN_VERSION))} or newer is on "
            f"PATH; install git or unset {SWITCH}"
        )
    return found


@functools.lru_cache(maxsize=4)
def _find(path: str) -> str | None:
    git = shutil.which("git", path=path)
    if git is None:
        return None
    try:
        proc = subprocess.run([git, "version"], capture_output=True, text=True, check=False,
                              stdin=subprocess.DEVNULL)
    except OSError:
        return None
    match = re.search(r"(\d+)\.(\d+)", proc.stdout)
    if proc.returncode != 0 or match is None:
        return None
    return git if (int(match[1]), int(match[2])) >= _MIN_VERSION else None


class Output(NamedTuple):
    code: int
    out: str
    err: str


def run(git: str, git_dir: Path | None, args: Sequence[str], *, stdin: str | None = None,
        batch_ssh: bool = True, show_progress: bool = False,
        env: Mapping[str, str] | None = None) -> Output:
    """Run ``git --git-dir GIT_DIR ARGS`` (no ``--git-dir`` when None: ``git clone``); the
    caller reads the exit code. ``env`` adds to git's environment (a quarantine's object
    folders: :class:`modelbox.refs.incoming.Quarantine`).

    With ``show_progress``, git's progress meters (and only those) are copied to stderr
    as they come, for the long transfers a person watches on a terminal. If this is
    interrupted (Ctrl-C), git and every process it started are killed (see :func:`_start`).

    Raises:
        GitError: git could not be started at all.
    """
    proc = None
    try:
        with held_interrupts():
            proc = _start(git, git_dir, args,
                          stdin=subprocess.PIPE if stdin is not None else None,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, batch_ssh=batch_ssh,
                          env=env)
        assert proc.stdout is not None and proc.stderr is not None
        err: list[bytes] = []
        # stderr and stdin in threads, stdout here: no pipe can fill up and block git.
        reader = threading.Thread(target=_drain, args=(proc.stderr, err, show_progress))
        reader.start()
        writer = None
        if stdin is not None:
            assert proc.stdin is not None
            writer = threading.Thread(target=_feed, args=(proc.stdin, stdin.encode()))
            writer.start()
        out = proc.stdout.read()
        proc.stdout.close()
        if writer is not None:
            writer.join()
        reader.join()
        code = proc.wait()
    except BaseException:
        if proc is not None:
            _kill(proc)
        raise
    return Output(code, out.decode("utf-8", "replace"), b"".join(err).decode("utf-8", "replace"))


def run_all(git: str, git_dir: Path, jobs: Sequence[tuple[Sequence[str], str]], *,
            env: Mapping[str, str] | None = None) -> list[Output]:
    """Run several local ``git --git-dir GIT_DIR ARGS`` with their stdin at once (one per
    core: a long history walk split in parts); their results in order. Interrupted, they
    are all killed, as :func:`run` kills its one."""
    procs: list[subprocess.Popen[bytes]] = []
    outs: list[list[bytes]] = [[] for _ in jobs]
    errs: list[list[bytes]] = [[] for _ in jobs]
    threads: list[threading.Thread] = []
    try:
        with held_interrupts():
            for args, _ in jobs:
                procs.append(_start(git, git_dir, args, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    batch_ssh=True, env=env))
        for proc, (_, stdin), out, err in zip(procs, jobs, outs, errs, strict=True):
            assert proc.stdin is not None and proc.stdout is not None
            assert proc.stderr is not None
            threads += [threading.Thread(target=_feed, args=(proc.stdin, stdin.encode())),
                        threading.Thread(target=_drain, args=(proc.stderr, err, False)),
                        threading.Thread(target=_drain, args=(proc.stdout, out, False))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        codes = [proc.wait() for proc in procs]
    except BaseException:
        for proc in procs:
            _kill(proc)
        raise
    return [Output(code, b"".join(out).decode("utf-8", "replace"),
                   b"".join(err).decode("utf-8", "replace"))
            for code, out, err in zip(codes, outs, errs, strict=True)]


@contextlib.contextmanager
def held_interrupts() -> Iterator[None]:
    """Hold a Ctrl-C back while the block runs, and raise it (KeyboardInterrupt) as the
    block ends: around starting git and recording it, so that no git can be left running
    unrecorded, hence unkilled. Only in the main thread, and only while Python's own
    handler is in place (a program's handler is left alone)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    caught: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if caught:
        raise KeyboardInterrupt


def _start(git: str, git_dir: Path | None, args: Sequence[str], *, stdin: Any,
           stdout: Any, stderr: Any, batch_ssh: bool, env: Mapping[str, str] | None = None,
           ) -> subprocess.Popen[bytes]:
    """Start ``git --git-dir GIT_DIR ARGS`` in a session of its own: a Ctrl-C reaches
    modelbox only, which then kills git's whole process group (:func:`_kill`), the
    index-pack or remote helper git started included. Killing git alone would leave those
    writing into a clone that modelbox is deleting."""
    argv = [git, *(["--git-dir", str(git_dir)] if git_dir is not None else []), *args]
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL if stdin is None else stdin,
                                stdout=stdout, stderr=stderr, start_new_session=True,
                                env={**environment(batch_ssh=batch_ssh), **(env or {})})
    except OSError as exc:
        raise GitError(f"cannot run {git} {_command(args)}: {exc}") from None


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill git and whatever it started (its process group), and reap it. Once git is
    reaped its id may be reused: then there is nothing left to kill."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _command(args: Sequence[str]) -> str:
    """The git command in ``args``, past any ``-c NAME=VALUE``."""
    rest = list(args)
    while rest[:1] == ["-c"]:
        rest = rest[2:]
    return rest[0] if rest else "git"


def _feed(pipe: IO[bytes], data: bytes) -> None:
    # A broken pipe means git stopped early; its exit code and stderr say why.
    with contextlib.suppress(BrokenPipeError):
        pipe.write(data)
    with contextlib.suppress(BrokenPipeError):
        pipe.close()


def _drain(pipe: IO[bytes], into: list[bytes], show_progress: bool) -> None:
    """Collect stderr; copy progress meters (split on CR or LF) to ours when asked."""
    pending = b""
    while chunk := pipe.read1(65536):  # type: ignore[attr-defined]  # a BufferedReader
        into.append(chunk)
        if not show_progress:
            continue
        pending += chunk
        *pieces, pending = re.split(rb"(?<=[\r\n])", pending)
        for piece in pieces:
            if _PROGRESS.match(piece):
                sys.stderr.buffer.write(piece)
                sys.stderr.flush()
    pipe.close()


_CREDENTIALS = re.compile(
    r"could not read (username|password)|authentication failed|permission denied"
    r"|returned error: 40[13]|terminal prompts disabled", re.IGNORECASE)
_UNREACHABLE = re.compile(
    r"unable to connect|could not resolve|failed to connect|couldn't connect|refused"
    r"|timed out|network is unreachable|no route to host|connection reset", re.IGNORECASE)
_NOT_A_REPO = re.compile(
    r"does not appear to be a git repository|not found|not exported|not a git repository"
    r"|repository '.*' does not exist",  # git clone of a local path
    re.IGNORECASE)
_NO_HELPER = re.compile(r"'remote-([\w+.-]+)' is not a git command")


def remote_error(url: str, stderr: str) -> RemoteError:
    """One clear line from what git printed when it failed to talk to ``url``."""
    lines = [line.strip() for line in stderr.splitlines()
             if line.strip() and not _PROGRESS.match(line.strip().encode())]
    # The first fatal/error line is the cause (later ones restate it in general terms);
    # one that ends with a colon continues on the next line (git://: "errno=...").
    at = next((i for i, line in enumerate(lines)
               if line.startswith(("fatal:", "error:", "ssh:"))), 0)
    reason = _strip(lines[at]) if lines else "git failed without a message"
    if reason.endswith(":") and at + 1 < len(lines):
        reason = f"{reason} {lines[at + 1]}"
    text = "\n".join(lines)
    if helper := _NO_HELPER.search(text):
        return RemoteError(f"{url}: git has no transport for {helper[1]}:// URLs")
    if _CREDENTIALS.search(text):
        return RemoteError(f"{url} refused the credentials ({reason}); configure a Git "
                           "credential helper, a token or an ssh key")
    if _UNREACHABLE.search(text):
        return RemoteError(f"cannot reach {url}: {reason}")
    if _NOT_A_REPO.search(text):
        # git's own words only repeat the URL here.
        return RemoteError(f"{url} is not a Git repository, or not one you may read; "
                           "check the URL")
    return RemoteError(f"{url}: {reason}")


def _strip(line: str) -> str:
    for prefix in ("fatal: ", "error: ", "remote: "):
        if line.startswith(prefix):
            line = line[len(prefix):]
    return line.rstrip(".")


# -- talking to a remote -----------------------------------------------------------------
def _remote_args(url: str) -> list[str]:
    # "--" first: a URL can never be read as an option.
    return ["--", url]


def ls_remote(git: str, git_dir: Path, url: str, *, batch_ssh: bool = True,
              ) -> tuple[dict[str, str], str | None]:
    """The refs of ``url`` (name -> sha, peeled ``^{}`` entries left out) and the branch
    its HEAD names, if any.

    Asked in protocol version 0, whatever ``protocol.version`` says: there the server
    lists its refs as soon as the connection opens (one request over http), where
    version 2 first sends its capabilities and answers a second request, which costs
    another round trip (and, against ``git daemon``, a delayed-ACK stall: 0.10 s against
    0.02 s on loopback). Version 2's gain, refs filtered by the server, is worth little
    here: push and status want every ref anyway.
    """
    res = run(git, git_dir, ["-c", "protocol.version=0", "ls-remote", "--symref",
                             *_remote_args(url)], batch_ssh=batch_ssh)
    if res.code != 0:
        raise remote_error(url, res.err)
    refs: dict[str, str] = {}
    head = None
    for line in res.out.splitlines():
        left, _, name = line.partition("\t")
        if left.startswith("ref: "):
            if name == "HEAD" and left[5:].startswith("refs/heads/"):
                head = left[len("ref: refs/heads/"):]
        elif name and not name.endswith("^{}"):
            refs[name] = left
    return refs, head


_FETCH_ATTEMPTS = 3


def fetch(git: str, git_dir: Path, url: str, wanted: Callable[[str], bool],
          have: Callable[[str], bool], *, batch_ssh: bool = True,
          progress: bool = False, env: Callable[[], Mapping[str, str]] | None = None,
          ) -> tuple[dict[str, str], str | None]:
    """Bring the objects of every ref of ``url`` that ``wanted`` accepts; local refs do
    not move. Returns those refs (name -> sha) and the branch the remote's HEAD names.

    One round trip (``ls-remote``) when ``have`` says every object is here already.
    Otherwise ``git fetch`` brings the refs by name, into no local ref at all (what
    ``git clone`` writes as one packed-refs file would be hundreds of ref files here);
    if a ref moved between the listing and the fetch, so that what was listed did not
    arrive, both run again. ``env``, called only when something is fetched, gives the
    variables that send the objects into a quarantine.
    """
    for _ in range(_FETCH_ATTEMPTS):
        refs, head = ls_remote(git, git_dir, url, batch_ssh=batch_ssh)
        chosen = {name: sha for name, sha in refs.items() if wanted(name)}
        missing = [name for name, sha in chosen.items() if not have(sha)]
        if not missing:
            return chosen, head
        res = run(git, git_dir, [
            "fetch", "--no-tags", "--no-write-fetch-head", "--no-auto-gc", "--no-prune",
            "--recurse-submodules=no", "--progress" if progress else "--quiet", "--stdin",
            *_remote_args(url),
        ], stdin="".join(f"{name}\n" for name in missing), batch_ssh=batch_ssh,
            show_progress=progress, env=env() if env is not None else None)
        if res.code != 0:
            raise remote_error(url, res.err)
        # An object that arrived came with everything it reaches (git checks that).
        if all(have(chosen[name]) for name in missing):
            return chosen, head
    raise RemoteError(f"{url} kept changing while modelbox fetched from it; run the "
                      "command again")


def clone(git: str, url: str, dest: Path, *, origin: str, refspecs: Iterable[str],
          shallow: bool = False, batch_ssh: bool = True, progress: bool = False) -> None:
    """``git clone --no-checkout``: ``dest`` gets every branch of ``url`` as remote-tracking
    refs, a local branch for the one the remote's HEAD names, ``remote.ORIGIN`` with
    git's default fetch refspec, and the refs the extra ``refspecs`` map (used for this
    clone only, not written to the config), all in one ``packed-refs`` file.

    A clone, unlike a fetch, skips the walk that checks the new objects are connected:
    index-pack checks that the pack is complete (~0.3 s at 11,000 commits). ``shallow``
    brings only the commits the refs name, not their history (``--depth 1``; ignored
    when ``url`` is a local path, which git clones by copying files).

    Raises:
        RemoteError: git failed (it removes what it made of ``dest``).
    """
    res = run(git, None, [
        *_fetch_config(origin, refspecs), "clone", "--no-checkout", "--origin", origin,
        *(["--depth=1", "--no-single-branch"] if shallow else []),
        "--progress" if progress else "--quiet", "--", url, str(dest),
    ], batch_ssh=batch_ssh, show_progress=progress)
    if res.code != 0:
        raise remote_error(url, res.err)


def _fetch_config(origin: str, refspecs: Iterable[str]) -> list[str]:
    """``-c remote.ORIGIN.fetch=SPEC`` for each refspec: extra refs a clone takes, for
    that clone only (not written to the configuration)."""
    return [arg for spec in refspecs for arg in ("-c", f"remote.{origin}.fetch={spec}")]


def refs_under(git: str, git_dir: Path, prefix: str) -> dict[str, str]:
    """Every ref below the folder ``prefix`` (``refs/modelbox/tags``) -> its sha."""
    res = run(git, git_dir, ["for-each-ref", "--format=%(objectname) %(refname)",
                             prefix.rstrip("/") + "/"])
    if res.code != 0:
        raise GitError(f"git for-each-ref failed in {git_dir}: {res.err.strip()}")
    return {name: sha for sha, _, name in (line.partition(" ") for line in res.out.splitlines())}


class PushStatus(NamedTuple):
    """What ``git push --porcelain`` said about one ref."""

    flag: str  # " " fast-forward, "+" forced, "-" deleted, "*" new, "=" same, "!" refused
    summary: str  # "[rejected] (stale info)", "[new branch]", ...


_ATOMIC_UNSUPPORTED = "does not support --atomic"
_ARGV_BUDGET = 256 * 1024  # bytes of refspecs per git push: far below any ARG_MAX


def push(git: str, git_dir: Path, url: str, updates: Mapping[str, str | None],
         leases: Mapping[str, str | None], *, batch_ssh: bool = True, progress: bool = False,
         ) -> dict[str, PushStatus]:
    """Set (sha) or delete (None) refs of ``url`` in one atomic push when the server can.

    A ref in ``leases`` is only updated while the remote still holds the given value
    (None: no such ref); the others are forced. Hooks do not run (``modelbox push`` has
    already done what modelbox's pre-push hook would). Returns every ref's status;
    raises RemoteError only when git could not push at all.
    """
    args = ["push", "--porcelain", "--no-verify", "--no-follow-tags", "--no-signed",
            "--recurse-submodules=no", "--progress" if progress else "--quiet"]
    specs = []
    for name, target in updates.items():
        if name in leases:
            args.append(f"--force-with-lease={name}:{leases[name] or ''}")
            specs.append(f"{target or ''}:{name}")
        else:
            specs.append(f"+{target}:{name}" if target else f":{name}")
    # Leased refs go in the first batch, with as many others as fit: a push of tens of
    # thousands of tag refs would overflow the command line.
    specs.sort(key=lambda spec: spec.rpartition(":")[2] not in leases)
    batches: list[list[str]] = [[]]
    size = 0
    for spec in specs:
        if size + len(spec) > _ARGV_BUDGET and batches[-1]:
            batches.append([])
            size = 0
        batches[-1].append(spec)
        size += len(spec) + 1
    statuses: dict[str, PushStatus] = {}
    atomic = True
    for batch in batches:
        found = _push_batch(git, git_dir, url, args, batch, atomic, batch_ssh, progress)
        if found is None:  # the server cannot do atomic pushes: what dulwich did too
            atomic = False
            found = _push_batch(git, git_dir, url, args, batch, atomic, batch_ssh, progress)
            assert found is not None
        statuses.update(found)
        if any(status.flag == "!" for status in found.values()):
            break
    return statuses


def _push_batch(git: str, git_dir: Path, url: str, args: list[str], specs: list[str],
                atomic: bool, batch_ssh: bool, progress: bool,
                ) -> dict[str, PushStatus] | None:
    res = run(git, git_dir, [*args, *(["--atomic"] if atomic else []), *_remote_args(url),
                             *specs], batch_ssh=batch_ssh, show_progress=progress)
    if atomic and _ATOMIC_UNSUPPORTED in res.err:
        return None
    statuses = {}
    for line in res.out.splitlines():
        flag, tab, rest = line.partition("\t")
        if not tab:
            continue  # "To URL", "Done"
        spec, _, summary = rest.partition("\t")
        statuses[spec.rpartition(":")[2]] = PushStatus(flag, summary.strip())
    if res.code != 0 and not any(status.flag == "!" for status in statuses.values()):
        raise remote_error(url, res.err)
    return statuses


# -- local history ---------------------------------------------------------------------
def _local(git: str, git_dir: Path, args: list[str], stdin: str | None = None,
           env: Mapping[str, str] | None = None) -> Output:
    res = run(git, git_dir, args, stdin=stdin, env=env)
    if res.code not in (0, 1):
        raise GitError(f"git {args[0]} failed in {git_dir}: {res.err.strip()}")
    return res


def rev_list(git: str, git_dir: Path, include: Iterable[str], exclude: Iterable[str],
             env: Mapping[str, str] | None = None) -> list[str]:
    """Commits reachable from ``include`` and from none of ``exclude``, newest first."""
    lines = [*include, *(f"^{sha}" for sha in exclude)]
    res = _local(git, git_dir, ["rev-list", "--stdin"], "".join(f"{x}\n" for x in lines),
                 env)
    if res.code != 0:
        raise GitError(f"git rev-list failed in {git_dir}: {res.err.strip()}")
    return res.out.split()


def messages(git: str, git_dir: Path, include: Iterable[str], exclude: Iterable[str],
             ) -> list[tuple[str, str]]:
    """``(sha, message)`` of the commits ``rev_list`` would name, by one ``git log``."""
    lines = [*include, *(f"^{sha}" for sha in exclude)]
    res = _local(git, git_dir, ["log", "-z", "--format=%H%n%B", "--stdin"],
                 "".join(f"{x}\n" for x in lines))
    if res.code != 0:
        raise GitError(f"git log failed in {git_dir}: {res.err.strip()}")
    out = []
    for record in res.out.split("\0"):
        sha, _, message = record.partition("\n")
        if sha:
            out.append((sha, message))
    return out


def changed_files(git: str, git_dir: Path, commits: Iterable[str]) -> list[tuple[str, str | None]]:
    """``(path, new blob or None)`` of every file each commit changed against each of its
    parents (against nothing for a root commit), by one ``git diff-tree``."""
    todo = "".join(f"{sha}\n" for sha in commits)
    if not todo:
        return []
    res = _local(git, git_dir, ["diff-tree", "--stdin", "-r", "-m", "--root", "--no-renames",
                                "--no-commit-id", "-z"], todo)
    if res.code != 0:
        raise GitError(f"git diff-tree failed in {git_dir}: {res.err.strip()}")
    fields = res.out.split("\0")
    out: list[tuple[str, str | None]] = []
    i = 0
    while i + 1 < len(fields):
        meta, path = fields[i], fields[i + 1]
        i += 2
        parts = meta.split()
        if not meta.startswith(":") or len(parts) < 5:
            continue
        new = parts[3]
        out.append((path, None if set(new) == {"0"} else new))
    return out


def new_entries(git: str, git_dir: Path, include: Iterable[str], exclude: Iterable[str],
                env: Mapping[str, str] | None = None) -> Iterator[tuple[str, int, str]]:
    """``(commit, mode, path)`` of every file (symbolic links and gitlinks included) that a
    commit reachable from ``include`` and from none of ``exclude`` adds, changes or
    removes (mode 0) against each of its parents (against nothing for a root commit).
    One ``git rev-list`` and one ``git diff-tree -r``: every path of every new commit is
    there or in a parent. (~0.5 s for the 11,000 commits of the 1,000 x 10 registry.)"""
    commits = rev_list(git, git_dir, include, exclude, env)
    if not commits:
        return
    # A long history is split in one contiguous part per core, diffed at once (each
    # commit against its parents needs nothing from the other parts); read in order, so
    # the first unsafe path reported is the one a single diff-tree would report.
    parts = max(1, min(os.cpu_count() or 1, 4, len(commits) // _DIFF_PART))
    size = -(-len(commits) // parts)
    args = ["diff-tree", "--stdin", "-r", "-m", "--root", "--no-renames", "-z"]
    results = run_all(git, git_dir, [
        (args, "".join(f"{sha}\n" for sha in commits[i : i + size]))
        for i in range(0, len(commits), size)], env=env)
    for res in results:
        if res.code != 0:
            raise GitError(f"git diff-tree failed in {git_dir}: {res.err.strip()}")
    commit = ""
    for res in results:
        for found in _RAW_ENTRY.finditer(res.out):
            if found[1]:
                commit = found[1]
            else:
                yield commit, int(found[2], 8), found[3]


_DIFF_PART = 5000  # commits: below twice that, one diff-tree (a process costs ~5 ms)


# With -z: "SHA\0" before each commit's entries, then ":OLD NEW OLDSHA NEWSHA STATUS\0PATH\0".
_RAW_ENTRY = re.compile(
    r"([0-9a-f]{40,64})\0|:\d{6} (\d{6}) [0-9a-f]+ [0-9a-f]+ [A-Z]\d*\0([^\0]*)\0"
)


def is_ancestor(git: str, git_dir: Path, ancestor: str, descendant: str) -> bool:
    return _local(git, git_dir, ["merge-base", "--is-ancestor", ancestor, descendant]).code == 0


def merge_base(git: str, git_dir: Path, one: str, other: str) -> str | None:
    out = _local(git, git_dir, ["merge-base", one, other]).out.split()
    return out[0] if out else None


def tree_files(git: str, git_dir: Path, commit: str) -> list[tuple[str, str]]:
    """``(path, blob sha)`` of every file of ``commit``, by one ``git ls-tree -r``."""
    res = _local(git, git_dir, ["ls-tree", "-r", "-z", "--full-tree", commit])
    if res.code != 0:
        raise GitError(f"git ls-tree failed in {git_dir}: {res.err.strip()}")
    out = []
    for entry in res.out.split("\0"):
        meta, tab, path = entry.partition("\t")
        parts = meta.split()
        if tab and len(parts) == 3 and parts[1] == "blob":
            out.append((path, parts[2]))
    return out


def tree_entries(git: str, git_dir: Path, commit: str) -> Iterator[tuple[int, str]]:
    """``(mode, path)`` of every file (symbolic links and gitlinks included) of
    ``commit``'s tree, by one ``git ls-tree -r``."""
    res = _local(git, git_dir, ["ls-tree", "-r", "-z", "--full-tree", commit])
    if res.code != 0:
        raise GitError(f"git ls-tree failed in {git_dir}: {res.err.strip()}")
    for entry in res.out.split("\0"):
        meta, tab, path = entry.partition("\t")
        if tab:
            yield int(meta.split()[0], 8), path


def update_refs(git: str, git_dir: Path, refs: Mapping[str, str]) -> None:
    """Set every ref in ``refs`` (name -> sha) in one ``git update-ref --stdin``."""
    res = run(git, git_dir, ["update-ref", "--stdin"],
              stdin="".join(f"update {name} {sha}\n" for name, sha in refs.items()))
    if res.code != 0:
        raise GitError(f"cannot set refs in {git_dir}: {res.err.strip()}")


class Job:
    """A git process that runs while modelbox does other work: :meth:`wait` collects it,
    :meth:`stop` kills it. stdin and stderr are files, not pipes: a pipe nobody reads
    could fill up and block git."""

    def __init__(self, git: str, git_dir: Path | None, args: Sequence[str], *,
                 stdin: str | None = None, batch_ssh: bool = True) -> None:
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 - closed by wait() or stop()
        feed = None
        if stdin is not None:
            feed = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
            feed.write(stdin.encode())
            feed.seek(0)
        try:
            self._proc = _start(git, git_dir, args, stdin=feed, stdout=subprocess.DEVNULL,
                                stderr=self._err, batch_ssh=batch_ssh)
        except GitError:
            self._err.close()
            raise
        finally:
            if feed is not None:
                feed.close()  # git holds its own descriptor

    def wait(self) -> Output:
        """Wait for git; its exit code and what it printed on stderr."""
        code = self._proc.wait()
        self._err.seek(0)
        err = self._err.read().decode("utf-8", "replace")
        self._err.close()
        return Output(code, "", err)

    def stop(self) -> None:
        """Give up: stop git and what it started (the caller removes what they wrote)."""
        _kill(self._proc)
        self._err.close()


def checkout(git: str, git_dir: Path, work_tree: Path, commit: str, *,
             parallel: bool = False) -> Job:
    """Start ``git read-tree``: write the work tree and index of ``commit``.

    The index is written in version 2 without split or sparse parts, whatever the
    user's configuration asks of new indexes: what :mod:`modelbox.refs.index` reads.
    ``parallel`` writes the files with one worker per core (``checkout.workers=0``; git's
    default is one): most of a 100,000-version checkout (106,771 files) is the kernel
    creating files; on two cores, four rounds alternating which went first, the parallel
    one was faster each time (6.6 s against 7.8-8.7 s three times; git 2.39).
    """
    workers = ["-c", "checkout.workers=0"] if parallel else []
    return Job(git, git_dir, ["-c", "index.version=2", "-c", "core.splitIndex=false",
                              "-c", "index.sparse=false", *workers,
                              "--work-tree", str(work_tree), "read-tree", "--reset", "-u",
                              commit])


def clone_history(git: str, url: str, dest: Path, *, refspecs: Iterable[str],
                  batch_ssh: bool = True) -> Job:
    """Start ``git clone --bare`` of ``url`` into ``dest``: every branch and tag, and the
    refs the extra ``refspecs`` map, with all their history (for :func:`adopt_history`)."""
    return Job(git, None, [*_fetch_config("origin", refspecs), "clone", "--bare", "--quiet",
                           "--", url, str(dest)], batch_ssh=batch_ssh)


def adopt_history(git: str, git_dir: Path, other: Path) -> bool:
    """Complete the shallow repository ``git_dir`` with the packs of the complete one
    ``other`` (:func:`clone_history`): move them in, then drop the ``shallow`` file.

    Only when ``other`` holds every commit ``shallow`` names: a clone's pack is
    self-contained, so each of them then arrives with all its history. Returns False,
    changing nothing, when it does not (the remote rewrote a branch between the two
    clones) or when ``other`` holds loose objects.
    """
    boundary = (git_dir / "shallow").read_text(encoding="ascii").split()
    res = run(git, other, ["cat-file", "--batch-check=%(objecttype)"],
              stdin="".join(f"{sha}\n" for sha in boundary))
    if res.code != 0 or res.out.split() != ["commit"] * len(boundary):
        return False
    objects = other / "objects"
    if any(len(entry.name) == 2 for entry in objects.iterdir()):
        return False  # git clone keeps what it receives as a pack; never mind otherwise
    # A pack counts once its index is there: every .pack (and .rev) before any .idx.
    for suffix in (".pack", ".rev", ".idx"):
        for path in sorted((objects / "pack").glob(f"pack-*{suffix}")):
            os.replace(path, git_dir / "objects" / "pack" / path.name)
    (git_dir / "shallow").unlink()
    return True


def unshallow(git: str, git_dir: Path, url: str, refs: Iterable[str], *,
              batch_ssh: bool = True) -> Output:
    """Fetch the history a shallow repository lacks, for the remote refs ``refs`` (names),
    into no local ref: ``git fetch --unshallow``."""
    return run(git, git_dir, [
        "fetch", "--unshallow", "--no-tags", "--no-write-fetch-head", "--no-auto-gc",
        "--no-prune", "--recurse-submodules=no", "--quiet", "--stdin", *_remote_args(url),
    ], stdin="".join(f"{ref}\n" for ref in refs), batch_ssh=batch_ssh)
