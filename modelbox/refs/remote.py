"""Talking to another Git repository: list its refs, fetch from it, push to it.

Two implementations behind one :class:`Remote`: the ``git`` program when it is installed
(:mod:`modelbox.refs.gitcli`, fast: packs are built and read in C), else dulwich
(pure Python, ~15x slower on a large registry). ``MODELBOX_GIT_TRANSPORT=git|dulwich``
forces one. Both speak every transport git does: plain paths and ``file://``, ``git://``,
smart ``http(s)://`` and ``ssh://`` / ``user@host:path``, and both keep one contract:

* :meth:`Remote.fetch` brings objects only; it says which refs it fetched and the caller
  moves local refs itself;
* :meth:`Remote.push` raises :class:`RemoteMovedError` when a ref it was told to expect
  moved (nothing is sent), and :class:`PushRejectedError` naming each ref the server
  refused (dulwich does not raise on those; git's statuses are read one by one).

Errors of dulwich's transports become :class:`RemoteError` in :func:`_transport_errors`,
those of git in :func:`modelbox.refs.gitcli.remote_error`. The history questions a sync
asks (ancestry, new commits) go to git too when it is there.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import unquote, urlsplit

from dulwich.errors import (
    GitProtocolError,
    HangupException,
    NotGitRepository,
    ObjectFormatException,
)
from dulwich.file import FileLocked
from dulwich.objects import ZERO_SHA, ObjectID
from dulwich.refs import Ref

from modelbox.errors import GitError, PushRejectedError, RemoteError, RemoteMovedError
from modelbox.refs import gitcli, incoming

if TYPE_CHECKING:
    from dulwich.client import GitClient

    from modelbox.refs.repo import GitRepo

__all__ = [
    "MODELBOX_REFS",
    "PushRejectedError",
    "Remote",
    "RemoteError",
    "RemoteMovedError",
    "configure_remote",
    "ensure_refspecs",
    "remote_url",
]

MODELBOX_REFS = "refs/modelbox/"
_NETWORK_SCHEMES = frozenset({"git", "http", "https", "ssh", "git+ssh", "ssh+git"})
_TAGS = "refs/modelbox/tags/"
_AUDIT = "refs/modelbox/audit"


@contextlib.contextmanager
def _transport_errors(url: str, client: GitClient | None = None) -> Iterator[None]:
    """Turn what dulwich's transports raise into RemoteError, naming the remote; on every
    error, close what the failed call left open (:func:`_close_abandoned`) and the idle
    connections of ``client``'s HTTP pool."""
    try:
        with _translated(url):
            yield
    except BaseException as exc:
        _close_abandoned(exc)
        pool = getattr(client, "pool_manager", None)  # http(s) clients only
        if pool is not None:
            pool.clear()
        raise


@contextlib.contextmanager
def _translated(url: str) -> Iterator[None]:
    # Imported here: with the git program, a command never loads dulwich's transports.
    import socket

    from dulwich.client import HTTPUnauthorized

    try:
        yield
    except RemoteError:
        raise
    except NotGitRepository:
        raise RemoteError(f"{url} is not a Git repository") from None
    except ObjectFormatException as exc:  # read in this process from a local remote
        raise RemoteError(f"{url} holds a malformed object ({exc}); nothing was changed. "
                          "Ask whoever wrote it to run `git fsck`") from None
    except HTTPUnauthorized:
        raise RemoteError(
            f"{url} refused the credentials; configure a Git credential helper or token"
        ) from None
    except HangupException as exc:
        raise RemoteError(f"{url} hung up: {exc}; check the URL and your access") from None
    except GitProtocolError as exc:
        # dulwich wraps urllib3's connection errors: keep the part a person can act on.
        found = re.search(r"\[Errno -?\d+\] [^\"')]+", str(exc))
        if found or "Max retries exceeded" in str(exc):
            raise RemoteError(f"cannot reach {url}: {found[0] if found else exc}") from None
        raise RemoteError(f"{url}: {exc}") from None
    except (ConnectionError, socket.gaierror, TimeoutError) as exc:
        raise RemoteError(f"cannot reach {url}: {exc}") from None
    except OSError as exc:
        raise RemoteError(f"cannot reach {url}: {exc}") from None
    except Exception as exc:
        # urllib3 raises its own tree (MaxRetryError, ...) for http(s) URLs.
        if type(exc).__module__.startswith("urllib3"):
            raise RemoteError(f"cannot reach {url}: {exc}") from None
        raise


def _close_abandoned(exc: BaseException) -> None:
    """Close the connections dulwich raised ``exc`` from without closing them.

    On a hang-up, ``get_refs`` and friends raise with their Protocol (an ssh process and
    its pipes, a socket) still open in their frames; on an HTTP error status (a 404 from a
    URL that is no repository, a 401...) dulwich raises with the urllib3 response, and its
    socket, still open in its frame. Left to the garbage collector, each holds its process
    or socket, and warns (ResourceWarning), whenever the cycle is collected: one socket
    per failed command, which Python 3.13's collector reports inside the next test.
    """
    from dulwich.protocol import Protocol
    from urllib3.response import BaseHTTPResponse

    seen: BaseException | None = exc
    while seen is not None:
        frames = seen.__traceback__
        while frames is not None:
            for value in list(frames.tb_frame.f_locals.values()):
                if isinstance(value, (Protocol, BaseHTTPResponse)):
                    with contextlib.suppress(OSError):
                        value.close()
            frames = frames.tb_next
        seen = seen.__cause__ or seen.__context__


def _batch_ssh(repo: GitRepo | None) -> bool:
    """ssh in BatchMode, unless the user chose an ssh command (core.sshCommand) in the
    repository's configuration, or in their own when there is no repository yet."""
    if repo is not None:
        config: Any = repo.config_stack()
    else:
        from dulwich.config import StackedConfig

        config = StackedConfig.default()
    try:
        config.get((b"core",), b"sshCommand")
    except KeyError:
        return True
    return False


def _oid(sha: str) -> ObjectID:
    return ObjectID(sha.encode("ascii"))


class Remote:
    """Another repository, by URL: ``file://``, a path, ``git://``, ``http(s)://``, ssh."""

    def __init__(self, repo: GitRepo, url: str) -> None:
        if url.startswith("-"):
            raise RemoteError(f"{url!r} is not a repository URL or path")
        self.repo, self.url = repo, url
        self._client: GitClient | None = None
        self._path = ""
        self._git = gitcli.git_program()

    def _connect(self) -> tuple[GitClient, str]:
        if self._client is None:
            from dulwich.client import get_transport_and_path

            # git's order: GIT_SSH_COMMAND, then GIT_SSH, then core.sshCommand (which
            # dulwich reads from the configuration itself).
            ssh = os.environ.get("GIT_SSH_COMMAND") or os.environ.get("GIT_SSH") or None
            with _transport_errors(self.url):
                self._client, self._path = get_transport_and_path(
                    self.url, config=self.repo.config_stack(), quiet=True,
                    ssh_command=ssh,
                )
        return self._client, self._path

    def _batch_ssh(self) -> bool:
        return _batch_ssh(self.repo)

    def is_network(self) -> bool:
        """Whether the URL names a server (``git://``, ``http(s)://``, ``ssh://``), decided
        from its scheme alone; False when that is not enough to tell (then
        :meth:`local_git_dir` knows)."""
        return urlsplit(self.url).scheme.lower() in _NETWORK_SCHEMES

    def local_git_dir(self) -> Path | None:
        """The remote's git directory when it is on this machine (a path or file://)."""
        from dulwich.client import LocalGitClient

        client, path = self._connect()
        if not isinstance(client, LocalGitClient):
            return None
        if path.startswith("file://"):
            path = unquote(urlsplit(path).path)
        root = Path(path).expanduser().resolve()
        return root / ".git" if (root / ".git").is_dir() else root

    def ls(self) -> tuple[dict[str, str], str | None]:
        """The remote's refs (name -> sha) and the branch its HEAD names, if any."""
        if self._git is not None:
            return gitcli.ls_remote(self._git, self.repo.git_dir, self.url,
                                    batch_ssh=self._batch_ssh())
        client, path = self._connect()
        with _transport_errors(self.url, client):
            result = client.get_refs(path.encode())
        refs = {
            k.decode(): v.decode() for k, v in result.refs.items()
            if v is not None and not k.endswith(b"^{}")
        }
        return refs, _head_branch(result.symrefs)

    def fetch(self, wanted: Callable[[str], bool], check: Mapping[str, str | None] | None = None,
              ) -> tuple[dict[str, str], str | None]:
        """Bring the objects of every remote ref ``wanted(name)`` accepts.

        Returns those refs (name -> sha) and the branch the remote's HEAD names. Local refs
        do not move: the caller decides where each fetched ref goes.

        With ``check`` (ref name -> the local commit its new commits start from, or None),
        the objects wait in a :class:`~modelbox.refs.incoming.Quarantine` until the commits
        each of those refs brings are known to hold only paths that may be written; if
        one does not, none of them enters the repository.

        Raises:
            UnsafePathError: a checked ref brings a path that may not be written.
        """
        if not check:
            return self._fetch(wanted, None)
        quarantine = incoming.Quarantine(self.repo)
        try:
            fetched, head = self._fetch(wanted, quarantine)
            for ref, known in check.items():
                sha = fetched.get(ref)
                if sha is not None and sha != known:
                    incoming.check_commits(self.repo, [sha], [known] if known else [],
                                           self.url, quarantine)
            quarantine.admit()
        finally:
            quarantine.close()
        return fetched, head

    def _fetch(self, wanted: Callable[[str], bool], quarantine: incoming.Quarantine | None,
               ) -> tuple[dict[str, str], str | None]:
        if self._git is not None:
            return gitcli.fetch(self._git, self.repo.git_dir, self.url, wanted,
                                quarantine.has if quarantine else self.repo.has_object,
                                batch_ssh=self._batch_ssh(), progress=_on_terminal(),
                                env=quarantine.prepare if quarantine else None)
        client, path = self._connect()
        chosen: dict[str, str] = {}
        store = self.repo.raw.object_store

        def determine_wants(
            refs: Mapping[Ref, ObjectID | None], depth: int | None = None
        ) -> list[ObjectID]:
            out: list[ObjectID] = []
            for name, sha in refs.items():
                if sha is None or name.endswith(b"^{}") or not wanted(name.decode()):
                    continue
                chosen[name.decode()] = sha.decode()
                if sha not in store and sha not in out:
                    out.append(sha)
            return out

        target: Any = self.repo.raw if quarantine is None else _Target(self.repo, quarantine)
        with _transport_errors(self.url, client):
            result = client.fetch(path.encode(), target, determine_wants=determine_wants)
        return chosen, _head_branch(result.symrefs)

    def push(self, updates: Mapping[str, str | None], expected: Mapping[str, str | None]) -> None:
        """Set (sha) or delete (None) remote refs, atomically when the server can.

        ``expected`` holds the remote values the caller planned against; if one of them
        moved meanwhile, nothing is sent and RemoteMovedError is raised (with git, the
        check covers the expected refs that are updated: a lease on each). A ref the
        server refuses raises PushRejectedError.
        """
        if not updates:
            return
        if self._git is not None:
            self._push_git(updates, expected)
            return
        client, path = self._connect()
        raw = self.repo.raw

        def update_refs(refs: dict[Ref, ObjectID]) -> dict[Ref, ObjectID]:
            for name, sha in expected.items():
                current = refs.get(Ref(name.encode()))
                if (current.decode() if current else None) != sha:
                    raise RemoteMovedError(self.url, name)
            # Only the refs to change: a returned ref (HEAD...) is a command to set it.
            return {
                Ref(name.encode()): ZERO_SHA if target is None else _oid(target)
                for name, target in updates.items()
            }

        def pack_data(have: Any, want: Any, *, ofs_delta: bool = False,
                      progress: Any = None) -> Any:
            return raw.generate_pack_data(set(have), set(want), progress=progress,
                                          ofs_delta=ofs_delta)

        with _transport_errors(self.url, client):
            try:
                try:
                    result = client.send_pack(path.encode(), update_refs, pack_data,
                                              atomic=True)
                except GitProtocolError as exc:
                    if "atomic" not in str(exc).lower():
                        raise
                    result = client.send_pack(path.encode(), update_refs, pack_data)
            except FileLocked as exc:
                # A remote on this machine, whose ref another push holds locked right now.
                self._refused({_locked_ref(exc, path): "failed to lock"}, expected)
        refused = {
            name.decode(): why for name, why in (result.ref_status or {}).items()
            if why is not None
        }
        if refused:
            self._refused(refused, expected)

    def _push_git(self, updates: Mapping[str, str | None],
                  expected: Mapping[str, str | None]) -> None:
        assert self._git is not None
        statuses = gitcli.push(self._git, self.repo.git_dir, self.url, updates, expected,
                               batch_ssh=self._batch_ssh(), progress=_on_terminal())
        refused = {ref: status.summary.replace("[", "").replace("]", "")
                   for ref, status in statuses.items() if status.flag == "!"}
        if refused:
            self._refused(refused, expected)

    def _refused(self, refused: Mapping[str, str], expected: Mapping[str, str | None],
                 ) -> NoReturn:
        """Raise what a push refused for ``refused`` (ref -> the server's reason) means.

        With an atomic push, the refs that were fine report "atomic push failed": the
        others are the cause. When the cause is the server's ref transaction itself (every
        ref "atomic transaction failed": a ref was updated by another push between our
        listing and our update, or was locked by it), the remote is listed again: a ref we
        planned against that moved is :class:`RemoteMovedError`, as a failed lease is.
        """
        causes = {ref: why for ref, why in refused.items() if _BYSTANDER not in why} or refused
        for ref, why in sorted(causes.items()):
            if ref in expected and any(word in why for word in _MOVED):
                raise RemoteMovedError(self.url, ref)
        if lost_race(causes):
            now, _ = self.ls()
            for ref, sha in sorted(expected.items()):
                if now.get(ref) != sha:
                    raise RemoteMovedError(self.url, ref)
        raise PushRejectedError(self.url, causes)


def _locked_ref(exc: FileLocked, path: str) -> str:
    """The ref name (``refs/heads/main``) of the file a local push found locked."""
    name = os.fsdecode(exc.filename)
    root = os.path.abspath(path.removeprefix("file://"))
    rel = os.path.relpath(name, root) if os.path.isabs(name) else name
    return rel.replace(os.sep, "/")


def lost_race(statuses: Mapping[str, str]) -> bool:
    """Whether every refused ref failed in the server's ref transaction (lost a race with
    another push, or found its lock held): worth a pull and another try, unlike a refusal
    by a hook or a permission."""
    return bool(statuses) and all(any(word in why for word in _LOST_RACE)
                                  for why in statuses.values())


class _Target:
    """What dulwich's ``GitClient.fetch`` needs of the repository it fetches into: the
    repository's refs to negotiate with, the quarantine's objects to write into."""

    def __init__(self, repo: GitRepo, quarantine: incoming.Quarantine) -> None:
        self._raw = repo.raw
        self.object_store = quarantine.writable_store()
        self.object_format = repo.raw.object_format

    def get_graph_walker(self) -> Any:
        return self._raw.get_graph_walker()

    def update_shallow(self, new_shallow: Any, new_unshallow: Any) -> None:
        self._raw.update_shallow(new_shallow, new_unshallow)


# How git reports a ref that moved on the remote: a lease that failed, or a rejection
# because the remote has commits this side lacks.
_MOVED = ("stale info", "fetch first", "non-fast-forward")
# What an atomic push says of the refs that were fine (git and dulwich alike).
_BYSTANDER = "atomic push fail"
# How the server's ref transaction reports a ref another push updated (or held locked)
# between our listing and our update: git's receive-pack, and dulwich's local client.
_LOST_RACE = ("atomic transaction failed", "failed to update ref", "failed to lock",
              "cannot lock ref", "unable to set", "unable to remove")


def _head_branch(symrefs: Mapping[Ref, Ref] | None) -> str | None:
    head = (symrefs or {}).get(Ref(b"HEAD"))
    prefix = "refs/heads/"
    return head.decode()[len(prefix):] if head and head.startswith(prefix.encode()) else None


def _on_terminal() -> bool:
    """Whether a person watches stderr (then git's progress meters are shown)."""
    return sys.stderr.isatty()


# -- configuration ---------------------------------------------------------------------
def fetch_refspecs(name: str) -> list[str]:
    """What ``git fetch NAME`` should move: branches, tag refs, and the remote audit chain.

    The audit chain is fetched beside the local one (never over it), so a plain
    ``git fetch`` cannot drop local download events that were not pushed yet.
    """
    return [
        f"+refs/heads/*:refs/remotes/{name}/*",
        f"+{_TAGS}*:{_TAGS}*",
        # A one-star pattern: git fetch does not fail while the remote has no audit chain.
        f"+{_AUDIT}*:refs/remotes/{name}/modelbox/audit*",
    ]


def push_refspecs(branch: str) -> list[str]:
    """What ``git push`` should send: the branch (never forced), tag refs (forced), audit."""
    return [
        f"refs/heads/{branch}:refs/heads/{branch}",
        f"+{_TAGS}*:{_TAGS}*",
        f"{_AUDIT}*:{_AUDIT}*",
    ]


def remote_url(repo: GitRepo, name: str) -> str | None:
    """``remote.NAME.url`` from the repository's config, or None."""
    config = repo.raw.get_config()
    try:
        return config.get((b"remote", name.encode()), b"url").decode()
    except KeyError:
        return None


def ensure_refspecs(repo: GitRepo, name: str, branch: str) -> bool:
    """Add modelbox's fetch and push refspecs to ``remote.NAME`` if missing; True if added."""
    config = repo.raw.get_config()
    section = (b"remote", name.encode())
    changed = False
    for key, specs in ((b"fetch", fetch_refspecs(name)), (b"push", push_refspecs(branch))):
        present = {v.decode() for v in config.get_multivar(section, key)} if config.has_section(
            section) else set()
        for spec in specs:
            if spec not in present:
                config.add(section, key, spec.encode())
                changed = True
    if changed:
        config.write_to_path()
    return changed


def configure_remote(repo: GitRepo, name: str, url: str, branch: str) -> None:
    """Record the remote (URL and refspecs) and make ``branch`` track it."""
    config = repo.raw.get_config()
    if remote_url(repo, name) != url:  # as git clone wrote it: keep its place
        config.set((b"remote", name.encode()), b"url", url.encode())
    branch_section = (b"branch", branch.encode())
    config.set(branch_section, b"remote", name.encode())
    config.set(branch_section, b"merge", f"refs/heads/{branch}".encode())
    config.write_to_path()
    ensure_refspecs(repo, name, branch)


# -- history questions a sync asks ------------------------------------------------------
def is_ancestor(repo: GitRepo, ancestor: str, descendant: str) -> bool:
    """Whether ``ancestor`` is reachable from ``descendant`` (or equal to it)."""
    if ancestor == descendant:
        return True
    git = gitcli.git_program()
    if git is not None:
        return gitcli.is_ancestor(git, repo.git_dir, ancestor, descendant)
    from dulwich.graph import can_fast_forward

    return bool(can_fast_forward(repo.raw, _oid(ancestor), _oid(descendant)))


def merge_base(repo: GitRepo, one: str, other: str) -> str | None:
    git = gitcli.git_program()
    if git is not None:
        return gitcli.merge_base(git, repo.git_dir, one, other)
    from dulwich.graph import find_merge_base

    bases = find_merge_base(repo.raw, [_oid(one), _oid(other)])
    return bases[0].decode() if bases else None


def new_commits(repo: GitRepo, head: str, known: Iterable[str]) -> list[str]:
    """Commits reachable from ``head`` but from none of ``known`` (those we have)."""
    exclude = [sha for sha in known if repo.has_object(sha)]
    git = gitcli.git_program()
    if git is not None:
        return gitcli.rev_list(git, repo.git_dir, [head], exclude)
    walker = repo.raw.get_walker(include=[_oid(head)], exclude=[_oid(sha) for sha in exclude])
    return [entry.commit.id.decode() for entry in walker]


def new_changes(repo: GitRepo, head: str, known: Iterable[str], keep: Callable[[str], bool],
                ) -> list[tuple[str, str | None]] | None:
    """``(path, new blob or None)`` of the files changed by each commit reachable from
    ``head`` and from none of ``known`` whose message ``keep`` accepts, against each of its
    parents: one ``git log`` and one ``git diff-tree`` — or None without the git program
    (callers then walk the commits themselves)."""
    git = gitcli.git_program()
    if git is None:
        return None
    exclude = [sha for sha in known if repo.has_object(sha)]
    chosen = [sha for sha, message in gitcli.messages(git, repo.git_dir, [head], exclude)
              if keep(message)]
    return gitcli.changed_files(git, repo.git_dir, chosen)


def files_below(repo: GitRepo, commit: str, folder: str) -> list[tuple[str, str]] | None:
    """``(path, blob)`` of the ``*.json`` files of ``commit`` below a ``folder`` path
    segment, by one ``git ls-tree`` — or None without the git program."""
    git = gitcli.git_program()
    if git is None:
        return None
    marker = f"/{folder}/"
    return [(path, sha) for path, sha in gitcli.tree_files(git, repo.git_dir, commit)
            if path.endswith(".json") and marker in f"/{path}"]


def tracking_refs(name: str, refs: Mapping[str, str]) -> dict[str, str]:
    """The remote-tracking refs that mirror the remote ``name``'s ``refs``: its branches
    (``refs/remotes/NAME/*``) and its audit chain (``refs/remotes/NAME/modelbox/audit``)."""
    tracking = {}
    for ref, sha in refs.items():
        if ref.startswith("refs/heads/"):
            tracking[f"refs/remotes/{name}/{ref[len('refs/heads/'):]}"] = sha
        elif ref == _AUDIT:
            tracking[f"refs/remotes/{name}/modelbox/audit"] = sha
    return tracking


_CLONED = ("refs/heads/", MODELBOX_REFS, "refs/tags/")


Cloned = tuple["GitRepo", dict[str, str], str | None]


@contextlib.contextmanager
def cloning(url: str, dest: Path, name: str) -> Iterator[Cloned]:
    """Make ``dest`` a repository with what a clone takes from ``url``: every branch as a
    remote-tracking ref, ``refs/modelbox/*`` and ``refs/tags/*`` as they are there, the
    audit chain as a remote-tracking ref too; all refs in one ``packed-refs`` file. When
    the remote's HEAD names a branch, that branch is made here and HEAD names it (no file
    of it is written), as ``git clone --no-checkout`` does. The caller configures the
    remote (:func:`configure_remote`): git has written ``remote.NAME`` and the branch's
    upstream already, dulwich nothing.

    Yields the repository, the remote's branches (``refs/heads/*`` -> sha) and the branch
    its HEAD names, and closes the repository when the block ends. With git, the block
    starts as soon as the commits the refs name are here, their files included: the
    history behind them arrives while it runs (the caller writes the work tree
    meanwhile), and is all there when the block ends. Two ``git clone`` run at once: a
    shallow one (``--depth 1``) into ``dest``, small and quick (~6% of the bytes at
    11,000 commits), and a whole one into a folder beside it, whose packs then move into
    ``dest`` (:func:`gitcli.adopt_history`). A local path is one plain ``git clone``
    (git copies or links the files). With dulwich, one whole fetch before the block.

    Raises:
        RemoteError: the remote cannot be reached or read, or it rewrote a branch while
            it was being cloned (clone again).
    """
    from modelbox.refs.repo import GitRepo

    git = gitcli.git_program()
    if git is None:
        repo = _fetch_clone(url, dest, name)
        try:
            yield repo, *_cloned_branches(repo, name)
        finally:
            repo.close()
        return
    if url.startswith("-"):
        raise RemoteError(f"{url!r} is not a repository URL or path")
    history = side = None
    batch_ssh = _batch_ssh(None)
    try:
        if not _is_local_path(url):
            dest.parent.mkdir(parents=True, exist_ok=True)
            side = Path(tempfile.mkdtemp(prefix=f".{dest.name}.history-", dir=dest.parent))
            with gitcli.held_interrupts():
                history = gitcli.clone_history(git, url, side / "history.git", refspecs=[
                    f"+{MODELBOX_REFS}*:{MODELBOX_REFS}*"], batch_ssh=batch_ssh)
        gitcli.clone(git, url, dest, origin=name, shallow=history is not None, refspecs=[
            f"+{MODELBOX_REFS}*:{MODELBOX_REFS}*",
            f"+{_AUDIT}*:refs/remotes/{name}/modelbox/audit*",  # a pattern: may be absent
        ], batch_ssh=batch_ssh, progress=_on_terminal())
        repo = GitRepo.open(dest)
        try:
            yield repo, *_cloned_branches(repo, name)
            if history is not None and side is not None:
                _complete_history(git, repo, url, name, history, side / "history.git")
        finally:
            repo.close()
    except BaseException:
        if history is not None:
            history.stop()
        raise
    finally:
        if side is not None:
            shutil.rmtree(side, ignore_errors=True)


def discard_clone(dest: Path, *, existed: bool) -> None:
    """Remove what a failed or interrupted :func:`cloning` left: ``dest`` (emptied if it
    ``existed``) and any folder of a whole clone beside it (an interruption can land
    while that folder is being removed)."""
    if existed:
        for child in dest.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    else:
        shutil.rmtree(dest, ignore_errors=True)
    for side in dest.parent.glob(f".{glob.escape(dest.name)}.history-*"):
        shutil.rmtree(side, ignore_errors=True)


def _is_local_path(url: str) -> bool:
    """Whether git clones ``url`` as a local path (by copying files): not ``scheme://``
    and not ``host:path``."""
    return "://" not in url and ":" not in url.split("/", 1)[0]


def _cloned_branches(repo: GitRepo, name: str) -> tuple[dict[str, str], str | None]:
    """The remote's branches (from the remote-tracking refs) and the local branch HEAD
    names, if the clone made one (only for a branch the remote's HEAD names)."""
    prefix = f"refs/remotes/{name}/"
    branches = {
        f"refs/heads/{ref[len(prefix):]}": sha
        for ref, sha in refs_under(repo, prefix).items()
        if ref != f"{prefix}HEAD" and not ref.startswith(f"{prefix}modelbox/")
    }
    head = repo.head_branch()
    made = f"refs/heads/{head}" in branches and repo.ref(f"refs/heads/{head}") is not None
    return branches, head if made else None


def _fetch_clone(url: str, dest: Path, name: str) -> GitRepo:
    """The clone :func:`cloning` makes, by a dulwich fetch into a new repository."""
    from modelbox.refs.repo import GitRepo

    repo = GitRepo.init(dest, "main")
    try:
        fetched, head = Remote(repo, url).fetch(lambda ref: ref.startswith(_CLONED))
        branches = {ref for ref in fetched if ref.startswith("refs/heads/")}
        refs = {ref: sha for ref, sha in fetched.items() if ref not in branches}
        refs.update(tracking_refs(name, fetched))
        if f"refs/heads/{head}" in branches:
            refs[f"refs/heads/{head}"] = fetched[f"refs/heads/{head}"]
        set_refs(repo, refs, packed=True)
        if f"refs/heads/{head}" in branches:
            set_head(repo, str(head))
    except BaseException:
        repo.close()
        raise
    return repo


def _complete_history(git: str, repo: GitRepo, url: str, name: str, job: gitcli.Job,
                      side: Path) -> None:
    """Wait for the whole clone ``side`` and complete the shallow ``repo`` with it; if it
    lacks a commit ``repo`` holds (the remote rewrote a branch meanwhile), fetch what is
    missing with ``git fetch --unshallow``."""
    res = job.wait()
    if res.code != 0:
        raise gitcli.remote_error(url, res.err)
    if not (repo.git_dir / "shallow").exists() or gitcli.adopt_history(git, repo.git_dir,
                                                                       side):
        return
    res = gitcli.unshallow(git, repo.git_dir, url, _cloned_refs(repo, name),
                           batch_ssh=_batch_ssh(repo))
    if res.code != 0:
        raise gitcli.remote_error(url, res.err)
    if (repo.git_dir / "shallow").exists():
        raise RemoteError(f"{url} rewrote a branch while modelbox cloned it; run the clone "
                          "again")


@contextlib.contextmanager
def checking_out(repo: GitRepo, commit: str) -> Iterator[None]:
    """Write the work tree and a fresh index for ``commit`` (a new, empty clone) while the
    body runs: with git, in a background process (creating thousands of folders is disk
    work, the body's is CPU work); with dulwich, before the body. If the body raises,
    the checkout stops; the caller removes the clone.
    """
    assert repo.root is not None
    git = gitcli.git_program()
    if git is None:
        from dulwich.index import build_index_from_tree

        build_index_from_tree(
            os.fsencode(repo.root), os.fsencode(repo.git_dir / "index"),
            repo.raw.object_store, repo.commit_info(commit).tree,
        )
        yield
        return
    job = None
    try:
        with gitcli.held_interrupts():
            job = gitcli.checkout(git, repo.git_dir, repo.root, commit,
                                  parallel=repo.git_setting("checkout", "workers") is None)
        yield
        res = job.wait()
    except BaseException:
        if job is not None:
            job.stop()
        raise
    if res.code != 0:
        raise GitError(f"cannot check out {commit} into {repo.root}: {res.err.strip()}")


def _cloned_refs(repo: GitRepo, name: str) -> list[str]:
    """The remote's names of the refs a clone copied whose targets may have history:
    its branches, the audit chain, ``refs/tags/*`` (tag refs name trees)."""
    branches, _ = _cloned_branches(repo, name)
    others = [ref for ref in refs_under(repo, "refs/")
              if ref.startswith(("refs/tags/", MODELBOX_REFS)) and not ref.startswith(_TAGS)]
    return [*branches, *others]


def refs_under(repo: GitRepo, prefix: str) -> dict[str, str]:
    """:meth:`GitRepo.refs_under`, read by one ``git for-each-ref`` when git is there
    (dulwich reads and checks each ref file in Python: ~0.1 ms a ref)."""
    git = gitcli.git_program()
    if git is None:
        return repo.refs_under(prefix)
    return gitcli.refs_under(git, repo.git_dir, prefix)


def has_refs_under(repo: GitRepo, prefix: str) -> bool:
    """Whether any ref starts with ``prefix``, reading no ref: a file in its loose folder,
    or a line of ``packed-refs`` (a no-op pull asks this; it must cost nothing)."""
    common = Path(repo.raw.commondir())
    for _, _, files in os.walk(common / prefix.rstrip("/")):
        if files:
            return True
    needle = f" {prefix}".encode()
    try:
        with open(common / "packed-refs", "rb") as packed:
            return any(needle in line for line in packed)
    except FileNotFoundError:
        return False


def set_refs(repo: GitRepo, refs: Mapping[str, str], *, packed: bool = False) -> None:
    """Set each ref (name -> sha): one git process for all of them when git is there.

    ``packed`` writes them into ``packed-refs`` instead, one file whatever their number,
    as ``git clone`` does (for a new clone: a loose ref of the same name would win).
    """
    if packed:
        repo.raw.refs.add_packed_refs({Ref(k.encode()): _oid(v) for k, v in refs.items()})
        return
    git = gitcli.git_program()
    if git is not None and len(refs) > 1:
        gitcli.update_refs(git, repo.git_dir, refs)
        return
    for name, sha in refs.items():
        repo.set_ref(name, sha)


def forget_branch(repo: GitRepo, branch: str) -> None:
    """Delete the local ``branch`` and its ``branch.NAME`` configuration, if any."""
    repo.delete_ref(f"refs/heads/{branch}")
    config = repo.raw.get_config()
    with contextlib.suppress(KeyError):
        del config[(b"branch", branch.encode())]
        config.write_to_path()


def set_head(repo: GitRepo, branch: str) -> None:
    repo.raw.refs.set_symbolic_ref(Ref(b"HEAD"), Ref(f"refs/heads/{branch}".encode()))
