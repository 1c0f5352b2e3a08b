"""``modelbox-git-pre-push``: the Git ``pre-push`` hook that ``modelbox install-hooks`` writes.

Git runs it as ``pre-push REMOTE URL`` with one line per ref on stdin. It runs the rules of
``modelbox check`` over what is pushed (the range of each registry branch, the tag refs
against the manifests), then places every object the pushed pointers need in the remote's
store; if either fails it exits 1, so git sends nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from modelbox.errors import ModelboxError
from modelbox.githooks import check_push, pre_push
from modelbox.registry import Registry


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "pre-push":  # the hook script passes its own name first
        args = args[1:]
    if not args:
        print("usage: modelbox-git-pre-push [pre-push] REMOTE [URL] < refs", file=sys.stderr)
        return 2
    url = args[1] if len(args) > 1 else args[0]
    lines = sys.stdin.read().splitlines()
    try:
        registry = Registry.open(Path.cwd())
        try:
            # The same rules as `modelbox check`, over what this push sends, first:
            # remote readers must never get a broken manifest or a hand-moved tag ref.
            problems = check_push(registry, lines)
            for problem in problems:
                print(f"modelbox pre-push: {_printable(str(problem))}", file=sys.stderr)
            if any(not problem.warning for problem in problems):
                print("modelbox pre-push: the push was stopped; fix the problems above "
                      "(`modelbox check`), then push again", file=sys.stderr)
                return 1
            copied = pre_push(registry, url, lines)
        finally:
            registry.close()
    except ModelboxError as exc:
        print(f"modelbox pre-push: {exc}; the push was stopped", file=sys.stderr)
        return 1
    if copied:
        print(f"modelbox: {copied} object(s) placed in the store of {url}", file=sys.stderr)
    return 0


def _printable(text: str) -> str:
    """Control characters shown escaped: commit authors and paths come from other people,
    and a terminal must not run what they wrote."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


if __name__ == "__main__":
    sys.exit(main())
