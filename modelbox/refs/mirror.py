"""A read-only mirror of a registry URL in the machine cache, kept fresh and checked.

One folder per URL, ``<cache>/registries/<key>`` (``key``:
:func:`modelbox.locations.url_key`, a hash of the URL with any credentials removed; the URL
itself is never written there):

* ``repo/``: a bare repository holding the remote's branches (and, once a command needed
  history, its audit chain). It appears whole or not at all: the first fetch fills
  ``repo.tmp-*`` beside it, which is renamed into place once every object is in and
  checked.
* ``state.json``: when it was last fetched and whether it holds the whole history or only
  the branch tips (a shallow mirror, ``--depth 1``); written to a temporary file and
  renamed.
* ``modelbox/lock``: held by the one process that fetches; readers take no lock.

Later fetches go into the same repository: objects only ever arrive (first into a
:class:`~modelbox.refs.incoming.Quarantine`, moved in only once every new commit holds
only paths that may be written, the check ``pull`` makes), and each ref then moves in one
rename, so a concurrent reader sees the old commit or the new, both complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dulwich.errors import NotGitRepository
from dulwich.repo import Repo

from modelbox.errors import MirrorError, RemoteError
from modelbox.locations import strip_credentials, url_key
from modelbox.redact import redact
from modelbox.refs import gitcli, incoming
from modelbox.refs.lock import locked
from modelbox.refs.remote import Remote, set_head
from modelbox.refs.repo import GitRepo

__all__ = ["Mirror", "MirrorState"]

_HEADS = "refs/heads/"
_AUDIT = "refs/modelbox/audit"

@dataclass(frozen=True)
class MirrorState:
    fetched: float  # time.time() of the last successful fetch
    full: bool      # the whole history (else the branch tips only)


class Mirror:
    """The cached mirror of one URL, under ``cache_root`` (``<cache>/registries``)."""

    def __init__(self, cache_root: Path, url: str) -> None:
        if url.startswith("-"):
            raise RemoteError(f"{url!r} is not a repository URL or path")
        self.url = url
        self.shown = redact(strip_credentials(url))
        self.root = cache_root / url_key(url)
        self.repo_path = self.root / "repo"
        self._state_path = self.root / "state.json"

    # -- reading ---------------------------------------------------------------------------
    def state(self) -> MirrorState | None:
        """What the last fetch recorded; None when there is no complete mirror (never
        fetched, deleted, or a damaged state file: then the next fetch starts over)."""
        try:
            raw = json.loads(self._state_path.read_text(encoding="utf-8"))
            state = MirrorState(float(raw["fetched"]), bool(raw["full"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return state if (self.repo_path / "HEAD").is_file() else None

    def open(self) -> GitRepo:
        """The mirror's repository, as it is now.

        Raises:
            MirrorError: there is none (it was deleted, or never fetched).
        """
        try:
            return GitRepo(Repo(str(self.repo_path)))
        except (OSError, NotGitRepository):
            raise self.vanished() from None

    def vanished(self) -> MirrorError:
        return MirrorError(f"the cached mirror of {self.shown} in {self.root} was deleted "
                           "while modelbox read it; run the command again to fetch it anew")

    def missing_offline(self, *, history: bool = False) -> MirrorError:
        what = (f"the cached copy of {self.shown} in {self.root} lacks the history this "
                "command reads" if history else
                f"there is no cached copy of {self.shown} in {self.root} yet")
        return MirrorError(f"--offline, and {what}; run the command once without --offline")

    # -- fetching --------------------------------------------------------------------------
    def fetch(self, *, full: bool, max_age: float | None) -> MirrorState:
        """Bring the mirror up to date, unless another process did so after ``max_age``
        seconds ago (None: fetch whatever the state); ``full`` also brings the whole history
        (once: the mirror stays full).

        Nothing half-written is ever visible: a first fetch is renamed into place whole, a
        later one admits its objects only once they are checked, then moves the refs.

        Raises:
            RemoteError: the URL cannot be reached or read (nothing changed).
            UnsafePathError: a fetched commit holds a path that may not be written.
        """
        try:
            return self._fetch(full=full, max_age=max_age)
        except OSError as exc:  # the cache folder removed or unwritable under the fetch
            raise MirrorError(
                f"cannot write the cached mirror of {self.shown} in {self.root} "
                f"({exc.strerror or exc}); if it was deleted meanwhile, run the command "
                "again") from None

    def _fetch(self, *, full: bool, max_age: float | None) -> MirrorState:
        self.root.mkdir(parents=True, exist_ok=True)
        with locked(self.root):
            state = self.state()
            if (state is not None and max_age is not None
                    and time.time() - state.fetched <= max_age and (state.full or not full)):
                return state  # another reader fetched while we waited for the lock
            # dulwich fetches whole histories only: such a mirror is full from the start.
            full = full or (state is not None and state.full) or gitcli.git_program() is None
            if state is None:
                self._first_fetch(full)
            elif full and not state.full:
                # History for a shallow mirror: a whole fetch into a new folder, swapped in.
                # `git fetch --unshallow` makes the server walk the history before its
                # first byte and the client check connectivity (see docs/collaboration.md).
                self._first_fetch(full, replace=True)
            else:
                repo = self.open()
                try:
                    self._update(repo, full, fresh=False)
                finally:
                    repo.close()
            new = MirrorState(time.time(), full)
            self._write_state(new)
            return new

    def _first_fetch(self, full: bool, *, replace: bool = False) -> None:
        """Fetch into a new folder, then rename it to ``repo``; ``replace``: swap it for
        the one there (a reader that opened the old one and finds it gone is told to run
        again; one that opens ``repo`` between the two renames waits for it)."""
        if not replace:  # a mirror a crash or `rm` left without a state file starts over
            shutil.rmtree(self.repo_path, ignore_errors=True)
        for old in [*self.root.glob("repo.tmp-*"), *self.root.glob("repo.old-*")]:
            if time.time() - old.stat().st_mtime > 3600:  # a killed fetch's (ours is locked)
                shutil.rmtree(old, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix="repo.tmp-", dir=self.root))
        try:
            repo = GitRepo(Repo.init_bare(str(tmp)))
            try:
                self._update(repo, full, fresh=True)
            finally:
                repo.close()
            if replace:
                old = Path(tempfile.mkdtemp(prefix="repo.old-", dir=self.root))
                os.replace(self.repo_path, old)
                os.replace(tmp, self.repo_path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, self.repo_path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _update(self, repo: GitRepo, full: bool, *, fresh: bool) -> None:
        def wanted(name: str) -> bool:
            return name.startswith(_HEADS) or (full and name == _AUDIT)

        old = {name: sha for name, sha in repo.refs_under(_HEADS).items()}
        if full and repo.ref(_AUDIT):
            old[_AUDIT] = repo.ref(_AUDIT) or ""
        git = gitcli.git_program()
        if git is None:
            fetched, head = Remote(repo, self.url).fetch(
                wanted, check={name: old.get(name) for name in self._listed(repo, wanted)})
        else:
            shallow = (repo.git_dir / "shallow").is_file() or fresh
            depth = ["--depth=1"] if not full else (["--unshallow"] if shallow and not fresh
                                                    else [])
            fetched, head = _fetch_checked(git, repo, self.url, wanted, old, depth,
                                           everything=bool(full and shallow and not fresh))
        _move_refs(repo, old, fetched)
        branch = head if head and f"{_HEADS}{head}" in fetched else None
        if branch is None and fetched:
            branch = next((n[len(_HEADS):] for n in sorted(fetched) if n.startswith(_HEADS)),
                          None)
        if branch is not None and repo.head_branch() != branch:
            set_head(repo, branch)

    def _listed(self, repo: GitRepo, wanted: Callable[[str], bool]) -> list[str]:
        refs, _ = Remote(repo, self.url).ls()
        return [name for name in refs if wanted(name)]

    def _write_state(self, state: MirrorState) -> None:
        tmp = self._state_path.with_name(f"state.json.tmp-{os.getpid()}")
        tmp.write_text(json.dumps({"fetched": state.fetched, "full": state.full,
                                   "url": self.shown}) + "\n", encoding="utf-8")
        os.replace(tmp, self._state_path)


def _fetch_checked(git: str, repo: GitRepo, url: str, wanted: Callable[[str], bool],
                   old: dict[str, str], depth: list[str], *, everything: bool,
                   ) -> tuple[dict[str, str], str | None]:
    """``git fetch DEPTH`` of the wanted refs into a quarantine; every new commit checked
    (:func:`~modelbox.refs.incoming.check_commits`) before the objects move in."""
    refs, head = gitcli.ls_remote(git, repo.git_dir, url)
    chosen = {name: sha for name, sha in refs.items() if wanted(name)}
    missing = [name for name, sha in chosen.items() if everything or not repo.has_object(sha)]
    if not missing:
        return chosen, head
    shallow_file = repo.git_dir / "shallow"
    before = shallow_file.read_bytes() if shallow_file.is_file() else None
    quarantine = incoming.Quarantine(repo)
    try:
        res = gitcli.run(git, repo.git_dir, [
            "fetch", "--no-tags", "--no-write-fetch-head", "--no-auto-gc", "--no-prune",
            "--recurse-submodules=no", "--quiet", *depth, "--stdin", "--", url,
        ], stdin="".join(f"{name}\n" for name in missing),
            env=quarantine.prepare())
        if res.code != 0:
            raise gitcli.remote_error(url, res.err)
        for name in missing:
            if not quarantine.has(chosen[name]):
                raise RemoteError(f"{url} changed while modelbox fetched from it; run the "
                                  "command again")
            known = old.get(name)
            incoming.check_commits(
                repo, [chosen[name]], [known] if known and not everything else [], url,
                quarantine)
        quarantine.admit()
    except BaseException:
        # git wrote the shallow boundary of a fetch that is refused: put it back.
        if before is None:
            shallow_file.unlink(missing_ok=True)
        else:
            shallow_file.write_bytes(before)
        raise
    finally:
        quarantine.close()
    return chosen, head


def _move_refs(repo: GitRepo, old: dict[str, str], fetched: dict[str, str]) -> None:
    """The mirror's refs become the remote's: moved, added, and removed when gone there."""
    for name, sha in fetched.items():
        if old.get(name) != sha:
            repo.set_ref(name, sha)
    for name in old:
        if name not in fetched:
            repo.delete_ref(name)
