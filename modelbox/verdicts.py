"""The documents the check engine found clean, remembered by path and blob id.

Whether one document breaks a rule of its own (its JSON, its schema and pydantic model, its
place: :func:`modelbox.check.check_document`) depends only on its path and its bytes, and on
the engine that judges it. A blob never changes, so ``modelbox check`` and the hooks keep
the clean ones in ``.git/modelbox/check-verdicts`` and judge a document again only when its
bytes, its path or the engine changed. Rules between files (tags naming versions, folders,
links, releases, collisions) are never remembered: they are checked on every run.

Nothing in the file is trusted that could hide a problem:

* each line names the path, the blob id and the level (``s``: schema and pydantic model,
  ``p``: the pydantic model alone, what ``check`` without ``--schema`` runs), so a new
  commit's bytes, a blob moved to another path, or a ``--schema`` run over ``p`` verdicts
  are judged afresh;
* the first line names the engine: a digest of modelbox's own code and schemas and of the
  versions of Python, pydantic and jsonschema. Another engine's file is ignored whole;
* the last line is the SHA-256 of everything above it: a file edited by hand, torn or
  truncated is ignored whole (and written anew).

Only problem-free verdicts are kept; a broken document is judged on every run. The file is
written whole through a temporary file and a rename; a failure to write (a read-only
``.git``) only costs the next run its speed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from functools import cache
from importlib import metadata
from pathlib import Path

__all__ = ["FILE", "Verdicts", "engine", "engine_of"]

FILE = "check-verdicts"
_MAGIC = b"modelbox-check-verdicts 1"
_PACKAGES = ("pydantic", "pydantic-core", "jsonschema")
_MAX_LINES = 300_000  # past this (hooks adding without a whole check) keep what was used


@cache
def engine() -> str:
    """The judging engine's identity (:func:`engine_of` the installed package)."""
    return engine_of(Path(__file__).resolve().parent)


def engine_of(package: Path) -> str:
    """A digest of the code and schemas under ``package`` (every ``.py`` and ``.json``
    file, and ``schemas/*.json``) and of the versions of Python, pydantic and jsonschema
    it runs on: any change to a rule, a schema or a validator gives another engine."""
    digest = hashlib.sha256(sys.version.encode())
    for name in _PACKAGES:
        try:
            digest.update(f"\0{name}={metadata.version(name)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"\0{name}=-".encode())
    # schemas/ may be a symbolic link (a checkout), which rglob does not enter.
    files = [*package.rglob("*.py"), *package.rglob("*.json"),
             *(package / "schemas").glob("*.json")]
    for file in sorted(set(files)):
        digest.update(b"\0" + file.relative_to(package).as_posix().encode() + b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()


class Verdicts:
    """The clean verdicts of ``git_dir``'s file (an empty set if absent or not trusted).

    ``engine_id`` defaults to :func:`engine`; only verdicts of that engine are read, and
    :meth:`save` writes them as that engine's.
    """

    def __init__(self, git_dir: Path, *, engine_id: str | None = None) -> None:
        self.path = git_dir / "modelbox" / FILE
        self.engine = engine_id or engine()
        self._lines = self._read()
        self._seen: set[str] = set()
        self._added = False

    def _read(self) -> set[str]:
        try:
            data = self.path.read_bytes()
        except OSError:
            return set()
        body, _, trailer = data.rstrip(b"\n").rpartition(b"\n")
        header, _, lines = body.partition(b"\n")
        if (header != _MAGIC + b" " + self.engine.encode()
                or trailer != hashlib.sha256(body + b"\n").hexdigest().encode()):
            return set()  # another engine's, or edited, torn or truncated: judge afresh
        return set(lines.decode("utf-8", "surrogateescape").split("\n")) if lines else set()

    @staticmethod
    def _line(path: str, blob: str, schema: bool) -> str:
        return f"{'s' if schema else 'p'} {blob} {path}"

    def clean(self, path: str, blob: str, *, schema: bool) -> bool:
        """Whether the document ``blob`` at ``path`` was found clean (``schema``: by the
        schema too)."""
        if "\n" in path:
            return False  # one line per verdict: such a path is never remembered
        for line in ((f"s {blob} {path}",) if schema else
                     (f"p {blob} {path}", f"s {blob} {path}")):
            if line in self._lines:
                self._seen.add(line)
                return True
        return False

    def add(self, path: str, blob: str, *, schema: bool) -> None:
        """Remember that the document ``blob`` at ``path`` is clean."""
        if "\n" in path:
            return
        line = self._line(path, blob, schema)
        self._seen.add(line)
        if line not in self._lines:
            self._lines.add(line)
            self._added = True

    def save(self, *, only_seen: bool = False) -> None:
        """Write the verdicts back if any was added; ``only_seen`` keeps only those looked
        up or added since loading (a whole registry's check: the rest are of old blobs)."""
        lines = self._seen if only_seen or len(self._lines) > _MAX_LINES else self._lines
        if not self._added and not (only_seen and len(lines) < len(self._lines)):
            return
        body = b"\n".join([_MAGIC + b" " + self.engine.encode(),
                           *(line.encode("utf-8", "surrogateescape") for line in sorted(lines))]
                          ) + b"\n"
        data = body + hashlib.sha256(body).hexdigest().encode() + b"\n"
        tmp = self.path.with_name(f".{FILE}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, self.path)
        except OSError:  # a read-only git dir: judge again next time
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            return
        self._lines, self._added = set(lines), False
