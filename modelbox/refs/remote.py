"""Talking to another Git repository: list its refs, fetch from it, push to it (dulwich).

Every transport dulwich knows works: plain paths and ``file://``, ``git://``, smart
``http(s)://`` and ``ssh://`` / ``user@host:path``. Two gaps in dulwich are closed here:

* its fetch ignores refspecs (it only brings objects), so :meth:`Remote.fetch` says which
  refs it wants and the caller moves local refs itself;
* its push does not raise when the server refuses one ref, so :meth:`Remote.push` reads
  every ref's status and raises :class:`PushRejectedError` naming the refused ones.

Errors of the transports become :class:`RemoteError`, in :func:`_transport_errors` only.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from dulwich.client import GitClient, HTTPUnauthorized, LocalGitClient, get_transport_and_path
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
from dulwich.graph import can_fast_forward, find_merge_base
from dulwich.index import build_index_from_tree
from dulwich.objects import ZERO_SHA, ObjectID
from dulwich.refs import Ref

from modelbox.errors import PushRejectedError, RemoteError, RemoteMovedError

if TYPE_CHECKING:
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
_TAGS = "refs/modelbox/tags/"
_AUDIT = "refs/modelbox/audit"


@contextlib.contextmanager
def _transport_errors(url: str) -> Iterator[None]:
    """Turn what dulwich's transports raise into RemoteError, naming the remote."""
    try:
        yield
    except RemoteError:
        raise
    except NotGitRepository:
        raise RemoteError(f"{url} is not a Git repository") from None
    except HTTPUnauthorized:
        raise RemoteError(
            f"{url} refused the credentials; configure a Git credential helper or token"
        ) from None
    except HangupException as exc:
        raise RemoteError(f"{url} hung up: {exc}; check the URL and your access") from None
    except GitProtocolError as exc:
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


def _oid(sha: str) -> ObjectID:
    return ObjectID(sha.encode("ascii"))


class Remote:
    """Another repository, by URL: ``file://``, a path, ``git://``, ``http(s)://``, ssh."""

    def __init__(self, repo: GitRepo, url: str) -> None:
        self.repo, self.url = repo, url
        self._client: GitClient | None = None
        self._path = ""

    def _connect(self) -> tuple[GitClient, str]:
        if self._client is None:
            with _transport_errors(self.url):
                self._client, self._path = get_transport_and_path(
                    self.url, config=self.repo.raw.get_config_stack(), quiet=True
                )
        return self._client, self._path

    def local_git_dir(self) -> Path | None:
        """The remote's git directory when it is on this machine (a path or file://)."""
        client, path = self._connect()
        if not isinstance(client, LocalGitClient):
            return None
        if path.startswith("file://"):
            path = unquote(urlsplit(path).path)
        root = Path(path).expanduser().resolve()
        return root / ".git" if (root / ".git").is_dir() else root

    def ls(self) -> tuple[dict[str, str], str | None]:
        """The remote's refs (name -> sha) and the branch its HEAD names, if any."""
        client, path = self._connect()
        with _transport_errors(self.url):
            result = client.get_refs(path.encode())
        refs = {
            k.decode(): v.decode() for k, v in result.refs.items()
            if v is not None and not k.endswith(b"^{}")
        }
        head = (result.symrefs or {}).get(Ref(b"HEAD"))
        prefix = "refs/heads/"
        branch = head.decode()[len(prefix):] if head and head.startswith(prefix.encode()) else None
        return refs, branch

    def fetch(self, wanted: Callable[[str], bool]) -> tuple[dict[str, str], str | None]:
        """Bring the objects of every remote ref ``wanted(name)`` accepts.

        Returns those refs (name -> sha) and the branch the remote's HEAD names. Local refs
        do not move: the caller decides where each fetched ref goes.
        """
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

        with _transport_errors(self.url):
            result = client.fetch(path.encode(), self.repo.raw, determine_wants=determine_wants)
        head = (result.symrefs or {}).get(Ref(b"HEAD"))
        prefix = "refs/heads/"
        branch = head.decode()[len(prefix):] if head and head.startswith(prefix.encode()) else None
        return chosen, branch

    def push(self, updates: Mapping[str, str | None], expected: Mapping[str, str | None]) -> None:
        """Set (sha) or delete (None) remote refs, atomically when the server can.

        ``expected`` holds the remote values the caller planned against; if one of them
        moved meanwhile, nothing is sent and RemoteMovedError is raised. A ref the server
        refuses raises PushRejectedError.
        """
        if not updates:
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

        with _transport_errors(self.url):
            try:
                result = client.send_pack(path.encode(), update_refs, pack_data, atomic=True)
            except GitProtocolError as exc:
                if "atomic" not in str(exc).lower():
                    raise
                result = client.send_pack(path.encode(), update_refs, pack_data)
        refused = {
            name.decode(): why for name, why in (result.ref_status or {}).items()
            if why is not None
        }
        if refused:
            raise PushRejectedError(self.url, refused)


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
    return bool(can_fast_forward(repo.raw, _oid(ancestor), _oid(descendant)))


def merge_base(repo: GitRepo, one: str, other: str) -> str | None:
    bases = find_merge_base(repo.raw, [_oid(one), _oid(other)])
    return bases[0].decode() if bases else None


def new_commits(repo: GitRepo, head: str, known: Iterable[str]) -> list[str]:
    """Commits reachable from ``head`` but from none of ``known`` (those we have)."""
    exclude = [_oid(sha) for sha in known if repo.has_object(sha)]
    walker = repo.raw.get_walker(include=[_oid(head)], exclude=exclude)
    return [entry.commit.id.decode() for entry in walker]


def checkout(repo: GitRepo, commit: str) -> None:
    """Write the work tree and a fresh index for ``commit`` (a new, empty clone)."""
    assert repo.root is not None
    tree = repo.commit_info(commit).tree
    build_index_from_tree(
        os.fsencode(repo.root), os.fsencode(repo.git_dir / "index"),
        repo.raw.object_store, tree,
    )


def set_head(repo: GitRepo, branch: str) -> None:
    repo.raw.refs.set_symbolic_ref(Ref(b"HEAD"), Ref(f"refs/heads/{branch}".encode()))
