"""``modelbox ui`` and ``modelbox site build``: the registry in a browser (docs/web.md)."""

from __future__ import annotations

from pathlib import Path

import click

from modelbox.cli._common import Context, done, echo, emit_json, json_option, pass_ctx


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port on 127.0.0.1 (0: any free port).")
@click.option("--open/--no-open", "open_browser", default=False,
              help="Open the index in a web browser.")
@json_option
@pass_ctx
def ui(ctx: Context, port: int, open_browser: bool, as_json: bool) -> None:
    """Serve a read-only web site of the registry on 127.0.0.1 until Ctrl-C."""
    from modelbox.web.server import serve

    registry = ctx.registry

    def ready(url: str) -> None:
        if as_json:
            emit_json({"url": url})
        else:
            echo(f"Serving the registry at {url} (Ctrl-C stops)")
        if open_browser:
            import webbrowser

            webbrowser.open(url)

    serve(registry, port, ready)


@click.group()
def site() -> None:
    """The registry as a static web site."""


@site.command("build")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--jobs", "-j", type=click.IntRange(1, 256), default=None,
              help="Worker processes (default: one per core).")
@json_option
@pass_ctx
def site_build(ctx: Context, out: Path, jobs: int | None, as_json: bool) -> None:
    """Write every page and its JSON twin into OUT; only changed pages are rewritten."""
    from modelbox.web.site import build

    report = build(ctx.registry, out, jobs=jobs)
    done(as_json, report.to_json(), f"Wrote {len(report.written)} pages to {out} "
         f"({report.kept} unchanged, {len(report.removed)} removed)")


COMMANDS = [ui, site]
