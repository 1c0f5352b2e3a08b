"""Reading a registry by URL, without a clone: ``modelbox --repo URL get M:production``.

A URL opens the registry in a cached mirror (:class:`modelbox.refs.mirror.Mirror`):
fetched on first use, fetched again when older than the TTL (``$MODELBOX_URL_TTL``
seconds, default 60; ``refresh`` forces it, ``offline`` never fetches). The mirror holds
the branch tips only until a command needs history (``log``, ``resolve --at``, a
version's ``updated_at``): then it fetches the whole history, once.

The registry it opens is read-only: every write raises
:class:`~modelbox.errors.ReadOnlyRegistryError`. A download through a URL cannot push an
audit event to the remote; it is recorded as one JSON line in ``downloads.log`` beside
the mirror (``<cache>/registries/<key>/downloads.log``), never in the remote.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urlsplit

from modelbox.audit import AuditEvent, Change
from modelbox.documents import Settings
from modelbox.errors import (
    IdentityError,
    NotFoundError,
    ReadOnlyRegistryError,
    RegistryNotFoundError,
    StoreError,
)
from modelbox.locations import is_url
from modelbox.refs import GitRepo
from modelbox.refs.mirror import Mirror
from modelbox.registry import Registry

__all__ = ["DEFAULT_TTL", "UrlRegistry", "is_url", "open_url"]

DEFAULT_TTL = 60.0
"""Seconds a mirror is used as it is before it is fetched again."""


def ttl() -> float:
    try:
        return max(0.0, float(os.environ.get("MODELBOX_URL_TTL", DEFAULT_TTL)))
    except ValueError:
        return DEFAULT_TTL


def cache_root() -> Path:
    from modelbox.objects.cache import default_cache_dir

    return default_cache_dir() / "registries"


def open_url(url: str, *, branch: str | None = None, refresh: bool = False,
             offline: bool = False, history: bool = False) -> UrlRegistry:
    """The registry at ``url``, read through its cached mirror (fetched as needed).

    Raises:
        RemoteError: the URL cannot be reached or read.
        UnsafePathError: it holds a commit with a path that may not be written.
        MirrorError: ``offline`` and no cached mirror (with history, if ``history``).
        NotFoundError: it is not a registry, or has no branch ``branch``.
    """
    mirror = Mirror(cache_root(), url)
    ensure(mirror, refresh=refresh, offline=offline, history=history)
    # A fetch that brings history swaps the folder in with two renames: wait them out.
    deadline = time.monotonic() + 2.0
    while not mirror.repo_path.is_dir():
        if time.monotonic() > deadline:
            raise mirror.vanished()
        time.sleep(0.01)
    try:
        found = Registry.open(mirror.repo_path)
    except RegistryNotFoundError:
        raise NotFoundError(f"{mirror.shown} is not a modelbox registry: none of its "
                            "branches holds .modelbox/registry.json; check the URL") from None
    registry = UrlRegistry(found.repo, found.settings, mirror, offline=offline)
    if branch is not None:
        name = branch.removeprefix("refs/heads/")
        if registry.repo.ref(f"refs/heads/{name}") is None:
            registry.close()
            raise NotFoundError(f"{mirror.shown} has no branch {name!r}")
        registry.target_branch = name
    return registry


def ensure(mirror: Mirror, *, refresh: bool, offline: bool, history: bool) -> None:
    """Fetch ``mirror`` if it is absent, older than the TTL, lacks needed history, or
    ``refresh`` says so; with ``offline``, refuse instead when it is absent or lacks it."""
    state = mirror.state()
    lacking = state is None or (history and not state.full)
    if offline:
        if lacking:
            raise mirror.missing_offline(history=state is not None)
        return
    limit = ttl()
    if refresh or lacking or (state is not None and time.time() - state.fetched > limit):
        mirror.fetch(full=history, max_age=None if refresh else limit)


class UrlRegistry(Registry):
    """A registry read through the cached mirror of its URL: reads only."""

    def __init__(self, repo: GitRepo, settings: Settings, mirror: Mirror, *,
                 offline: bool = False) -> None:
        super().__init__(repo, settings)
        self.mirror, self.offline = mirror, offline

    @property
    def url(self) -> str:
        return self.mirror.url

    # -- no writes ------------------------------------------------------------------------
    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        raise ReadOnlyRegistryError(self.mirror.shown)
        yield  # pragma: no cover  (a generator, as the method it overrides)

    def sync_refs(self) -> dict[str, tuple[str | None, str | None]]:
        raise ReadOnlyRegistryError(self.mirror.shown)

    def follow_tag_refs(self, models: object, fresh: object = None,
                        stable: object = (), recent: object = None) -> bool:
        return False  # the mirror's tag refs are none of its business

    def recover(self) -> list[str]:
        return []

    # -- history on demand ----------------------------------------------------------------
    def log(self, target: str | None = None) -> list[AuditEvent]:
        self.need_history()
        return super().log(target)

    def need_history(self) -> None:
        """Fetch the whole history into the mirror if it holds the branch tips only, and
        read on from it (a shallow mirror's history stops at the tip)."""
        state = self.mirror.state()
        if state is not None and state.full:
            return
        ensure(self.mirror, refresh=False, offline=self.offline, history=True)
        self.repo.close()
        self.repo = self.mirror.open()
        self._history = None  # read again, from the new repository, when next needed

    # -- artifacts ------------------------------------------------------------------------
    def _local_root(self) -> Path | None:
        """The remote's folder when the URL names one on this machine (``file://``)."""
        parts = urlsplit(self.url)
        if parts.scheme.lower() != "file":
            return None
        return Path(unquote(parts.path)).resolve()

    def own_store(self) -> str:
        root = self._local_root()
        if root is None:
            raise StoreError(
                f"{self.mirror.shown} keeps its artifacts in each clone's own store, which "
                "cannot be read over the network; set a shared store (modelbox init "
                "--store s3://..., or $MODELBOX_STORE), or clone the registry")
        git_dir = root / ".git" if (root / ".git").is_dir() else root
        return str(git_dir / "modelbox" / "store")

    def store_root(self) -> str | Path:
        root = self._local_root()
        if self.settings.store and os.path.isabs(self.settings.store):
            return root or Path("/")  # an absolute folder (a shared mount) is read as it is
        if root is None:
            raise StoreError(
                f"{self.mirror.shown} names a store folder ({self.settings.store}) on the "
                "machine that serves it; set a shared store or $MODELBOX_STORE, or clone it")
        return root

    def check_download_audit(self) -> None:
        pass  # recorded locally, with the identity when there is one

    def record_event(self, change: Change) -> None:
        """A download through a URL: one JSON line in ``downloads.log`` beside the mirror
        (the remote is never written to)."""
        try:
            who: str | None = self.repo.identity()
        except IdentityError:
            who = None
        line = json.dumps({
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "author": who, "operation": change.operation, "target": change.target,
            "subject": change.subject, "after": change.after, "url": self.mirror.shown,
            "commit": self.head(),
        }, sort_keys=True, ensure_ascii=False) + "\n"
        path = self.mirror.root / "downloads.log"
        # One write of one line with O_APPEND: concurrent readers' lines never interleave.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)
