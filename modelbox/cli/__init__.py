"""The ``modelbox`` command line. The only code that imports click.

Every command opens the registry, calls one library method and prints the result; a
:class:`~modelbox.errors.ModelboxError` becomes one line on stderr and its exit code here,
in :class:`_Group.invoke`, and nowhere else.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys

import click

from modelbox.cli._common import Context, hoist_option
from modelbox.errors import GitError, ModelboxError, ReadOnlyRegistryError
from modelbox.redact import safe_text

MODULES: dict[str, tuple[str, ...]] = {
    "models": ("init", "model"),
    "versions": ("meta", "version"),
    "tags": ("resolve", "tag", "untag"),
    "artifact_cmds": ("artifact", "get"),
    "lifecycle_cmds": ("checkpoint", "event", "experiment", "gc", "metrics", "policy"),
    "history": ("log",),
    "maintenance": ("check", "config", "refs"),
    "remote_cmds": ("clone", "pull", "push", "status"),
    "review_cmds": ("codeowners", "diff", "install-hooks"),
    "collection_cmds": ("collection", "lineage", "link", "unlink"),
    "namespace_cmds": ("namespace",),
    "completion": ("completion",),
    "watch_cmd": ("watch",),
    "web_cmds": ("site", "ui"),
}
"""The module of ``modelbox.cli`` that defines each top-level command (its ``COMMANDS``).

A command's module is imported when the command is used, as click's documentation shows
for large command lines: ``modelbox resolve`` loads neither the web server's commands nor
the training watcher's (with the file-log walker left out of ``Registry``'s imports, 25 ms
of its 0.19 s median at 100,000 versions, docs/scale.md). ``--help`` and completion load
all.
"""

_MODULE_OF = {name: module for module, names in MODULES.items() for name in names}


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *_MODULE_OF})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in _MODULE_OF:
            module = importlib.import_module(f"modelbox.cli.{_MODULE_OF[cmd_name]}")
            for command in module.COMMANDS:
                self.add_command(command)
        return self.commands.get(cmd_name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # `modelbox tag M@V T --branch B` works like `modelbox --branch B tag M@V T`.
        args = hoist_option(ctx, self, args, "--branch")
        # `modelbox --repo URL get M:T --refresh` works like `modelbox ... --refresh get M:T`.
        for flag in ("--refresh", "--offline"):
            args = hoist_option(ctx, self, args, flag, flag=True)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> object:
        try:
            try:
                return super().invoke(ctx)
            except (OSError, GitError) as exc:
                # A URL's cached mirror deleted under a read: say that, not what broke.
                gone = ctx.obj.vanished() if isinstance(ctx.obj, Context) else None
                if gone is None:
                    raise
                raise gone from exc
        except ModelboxError as exc:
            # One line, whatever it quotes (ssh's stderr ends its lines with CR LF).
            message = re.sub(r"\s*[\r\n]+\s*", " ", str(exc)).strip()
            click.echo(f"modelbox: error: {safe_text(message, newlines=False)}", err=True)
            ctx.exit(exc.exit_code)


_CLONE_ONLY = frozenset({"push", "pull", "status", "gc", "install-hooks", "codeowners",
                         "refs", "check"})
"""Commands that ``--repo URL`` refuses before opening anything (see cli())."""


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="modelbox-registry")
@click.option(
    "--repo",
    metavar="PATH|URL",
    help="The registry to use (default: the one enclosing the current directory). A URL "
    "(file://, git://, http(s)://, ssh://, user@host:path) reads it without a clone, "
    "through a cached mirror; reads only.",
)
@click.option(
    "--branch",
    metavar="BRANCH",
    help="Read and write BRANCH instead of the registry branch, to propose a change for "
    "review (created from the registry branch if absent; tag refs are left alone).",
)
@click.option("--refresh", is_flag=True,
              help="With --repo URL: fetch the registry now, however fresh its mirror.")
@click.option("--offline", is_flag=True,
              help="With --repo URL: never fetch; read the cached mirror as it is.")
@click.pass_context
def cli(ctx: click.Context, repo: str | None, branch: str | None, refresh: bool,
        offline: bool) -> None:
    """A model registry that is a Git repository plus a checksum-addressed store."""
    if refresh and offline:
        raise click.UsageError("--refresh and --offline contradict each other")
    ctx.obj = Context(repo, branch, refresh=refresh, offline=offline)
    if ctx.obj.url is not None and ctx.invoked_subcommand in _CLONE_ONLY:
        # They talk to a remote of their own, write outside any commit, or delete.
        raise ReadOnlyRegistryError(ctx.obj.url, ctx.invoked_subcommand)
    ctx.call_on_close(ctx.obj.close)


class _SafeHandler(logging.Handler):
    """Log lines shown safely (libraries quote URLs), on whatever ``sys.stderr`` is when
    they are written: modelbox's own warnings, and the libraries' errors -- their warnings
    (urllib3's "Retrying...") come before an error line that says it all."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or record.name.split(".")[0] == "modelbox"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = safe_text(f"modelbox: warning: {record.getMessage()}", newlines=False)
            sys.stderr.write(line + "\n")
        except (TypeError, ValueError, OSError):  # a malformed record or a closed stderr
            self.handleError(record)


def _log_to_stderr() -> None:
    """Log lines of every logger reach stderr (see :class:`_SafeHandler`) redacted and
    escaped, one line each, instead of through logging's unfiltered last resort."""
    root = logging.getLogger()
    if not any(isinstance(h, _SafeHandler) for h in root.handlers):
        root.addHandler(_SafeHandler(logging.WARNING))


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return its exit code (0 ok, 1 modelbox error, 2 usage error)."""
    _log_to_stderr()
    try:
        result = cli.main(args=argv, prog_name="modelbox", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 1
    # Without standalone mode click returns ctx.exit()'s code instead of raising it.
    return result if isinstance(result, int) else 0


def entry() -> None:
    """The ``modelbox`` console script: :func:`main`, then the exit handlers and a flush,
    without Python's teardown of every module (:mod:`modelbox.exiting`)."""
    from modelbox.exiting import exit_now
    from modelbox.noplugins import without_pydantic_plugins

    without_pydantic_plugins()
    exit_now(main())


if __name__ == "__main__":
    entry()
