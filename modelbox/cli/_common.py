"""What every command shares: the registry opener, output, and value parsing.

Everything a command prints goes through :func:`echo` or :func:`emit_json`, which show text
the way :mod:`modelbox.redact` says is safe: no credentials, no terminal control sequences
(commit text, descriptions and pointers may come from a remote).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from modelbox import limits
from modelbox.errors import InvalidValueError, ModelboxError
from modelbox.names import ModelName, Reference, parse_model, parse_reference
from modelbox.redact import redact, safe_text

if TYPE_CHECKING:
    from modelbox.refs.trees import CommitFiles
    from modelbox.registry import Registry

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class Context:
    """Per-invocation state: ``--repo``, ``--branch`` and the registry, opened on first use.

    ``--repo`` is a folder or a URL; a URL opens a read-only registry through its cached
    mirror (:mod:`modelbox.urlread`; ``--refresh`` / ``--offline`` say when to fetch), and
    ``--branch`` then names the remote branch to read.
    """

    def __init__(self, repo: Path | str | None, branch: str | None = None, *,
                 refresh: bool = False, offline: bool = False) -> None:
        self.url: str | None = None
        if isinstance(repo, str):
            from modelbox.locations import is_url

            if is_url(repo):
                self.url, repo = repo, None
            else:
                repo = Path(repo)
        self.repo_path = repo
        self.branch = branch
        self.refresh, self.offline = refresh, offline
        self._registry: Registry | None = None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            if self.url is not None:
                from modelbox.urlread import open_url

                self._registry = open_url(self.url, branch=self.branch, refresh=self.refresh,
                                          offline=self.offline)
                return self._registry
            # Imported here: it brings dulwich (~40 ms), which `--help` never needs.
            from modelbox.registry import Registry

            self._registry = Registry.open(self.repo_path)
            self._registry.target_branch = self.branch
        return self._registry

    def read_branch(self, read: Callable[[CommitFiles], T]) -> T:
        """``read`` applied to the branch's files, for a command that only reads a few.

        A local registry read without ``--branch`` is read through ``git cat-file``
        (:func:`modelbox.opening.read_branch`), without opening the registry and importing
        dulwich; anything but that plain case (a URL, a target branch, a registry opened
        already, whatever the reader refuses) goes through the registry. ``read`` must only
        read: it may run twice.
        """
        if self._registry is None and self.url is None and self.branch is None:
            from modelbox.opening import read_branch
            from modelbox.refs.catfile import NotPlainError

            try:
                return read_branch(self.repo_path, read)
            except NotPlainError:
                pass
        return read(self.registry.snapshot())

    def vanished(self) -> ModelboxError | None:
        """When a URL's cached mirror was deleted while this command read it: the one
        line to say instead of whatever the read raised."""
        from modelbox.urlread import UrlRegistry

        registry = self._registry
        if isinstance(registry, UrlRegistry) and not registry.mirror.repo_path.is_dir():
            return registry.mirror.vanished()
        return None

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()


pass_ctx = click.make_pass_decorator(Context)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")(
        func
    )


def echo(message: object = "", *, err: bool = False, nl: bool = True) -> None:
    """Print one human-readable message (redacted, control characters escaped)."""
    click.echo(safe_text(str(message)), err=err, nl=nl)


# json.dumps escapes C0 controls itself; with ensure_ascii=False, DEL and the C1 controls
# (0x9b is a CSI on many terminals) pass raw: escape them too, the document stays equal.
_JSON_RAW_CONTROLS = re.compile(r"[\x7f-\x9f]")


def emit_json(document: Any) -> None:
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    text = _JSON_RAW_CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", redact(text))
    click.echo(text)


def done(as_json: bool, document: Any, message: str) -> None:
    """What a write command did: one JSON document with ``--json`` (the object it created
    or changed; ``before``/``after`` for a move), else one human line."""
    if as_json:
        emit_json(document)
    else:
        echo(message)


def show_value(value: Any) -> str:
    """A value in a human ``show`` line: text as it is, anything else as JSON
    (``{"a": 1}``, ``true``, ``null``), never a Python repr."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def model_arg(value: str) -> ModelName:
    return parse_model(value)


def ref_arg(value: str) -> Reference:
    return parse_reference(value)


def version_ref_arg(ctx: Context, value: str) -> Reference:
    """A reference that must name a version or checkpoint: a bare ``M`` is a usage error
    (exit 2) with a hint, decided by :mod:`modelbox.resolver` like every reference."""
    ref = parse_reference(value)
    if ref.version is None and ref.tag is None:
        from modelbox import resolver

        resolver.resolve(ctx.registry.snapshot(), ref, version_needed=True)
    return ref


def target_name(ctx: Context, ref: Reference) -> str:
    """What ``ref`` names now (``M@V`` for ``M:TAG``), for a write command's report."""
    from modelbox import resolver

    return str(resolver.resolve(ctx.registry.snapshot(), ref))


def parse_meta(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; VALUE is JSON when it parses as JSON, else a string."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidValueError(f"--meta wants KEY=VALUE, got {pair!r}")
        try:
            out[key] = _loads(key, value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def parse_json_value(value: str) -> Any:
    try:
        return _loads(None, value)
    except json.JSONDecodeError as exc:
        raise InvalidValueError(
            f"{_short(value)} is not JSON ({exc.msg}); quote strings, e.g. '\"coco-2017\"'"
        ) from None


def _loads(key: str | None, value: str) -> Any:
    """A JSON value from the command line, within the limits of a metadata value."""
    try:
        limits.check_value(value)  # undecodable bytes in argv arrive as lone surrogates
        limits.scan(value, "", depth=limits.MAX_VALUE_DEPTH)
        return json.loads(value)
    except limits.LimitError as exc:
        what = "the value" if key is None else f"the value of {key!r}"
        raise InvalidValueError(f"{what} {exc}; give a smaller value") from None


def _short(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


def hoist_option(ctx: click.Context, group: click.Group, args: list[str], name: str, *,
                 flag: bool = False) -> list[str]:
    """Move the root option ``name`` (``--branch B``; a ``flag`` takes no value) from after
    the subcommand to before it.

    ``modelbox tag M@V T --branch B`` then means ``modelbox --branch B tag M@V T``. A
    command that has an option of that name itself (``init --branch``) keeps it.
    """
    command: click.Command = group
    index = 0
    while isinstance(command, click.Group) and index < len(args):
        arg = args[index]
        if arg == "--":
            return args
        if arg.startswith("-"):
            takes_value = "=" not in arg and any(
                arg in p.opts and not getattr(p, "is_flag", False) for p in command.params
            )
            index += 2 if takes_value else 1
            continue
        sub = command.get_command(ctx, arg)
        if sub is None:
            return args  # click reports the unknown command
        command, index = sub, index + 1
    if command is group or any(name in p.opts for p in command.params):
        return args
    head, rest, moved = args[:index], [], []
    tail = args[index:]
    i = 0
    while i < len(tail):
        arg = tail[i]
        if arg == "--":
            rest += tail[i:]
            break
        if arg == name and flag:
            moved.append(name)
            i += 1
            continue
        if arg == name and i + 1 < len(tail):
            moved += [name, tail[i + 1]]
            i += 2
            continue
        if arg.startswith(name + "="):
            moved.append(arg)
        else:
            rest.append(arg)
        i += 1
    return [*moved, *head, *rest]

