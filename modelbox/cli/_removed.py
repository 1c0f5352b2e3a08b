"""How ``model|collection|experiment delete`` report what they did."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelbox.cli._common import echo, emit_json

if TYPE_CHECKING:
    from modelbox.removal import Removed


def report_removed(kind: str, removed: Removed, as_json: bool = False) -> None:
    """One line per consequence: what went, which tags were removed, what now dangles."""
    if as_json:
        emit_json({"deleted": kind, "name": removed.name, "versions": removed.versions,
                   "tags_removed": removed.tags, "dangling": removed.dangling})
        return
    items = "checkpoint(s)" if kind == "experiment" else "version(s)"
    echo(f"Deleted {kind} {removed.name} ({len(removed.versions)} {items}; Git history "
         "keeps them)")
    if removed.tags:
        echo(f"removed its tags: {', '.join(removed.tags)}")
    if removed.dangling:
        what = "promoted versions naming a deleted checkpoint" if kind == "experiment" else (
            "links left dangling (`modelbox check` reports them; `modelbox unlink` "
            "removes them)")
        echo(f"{what}: {', '.join(removed.dangling)}")
