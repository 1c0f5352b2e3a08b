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
from modelbox.redact import safe_text
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
                print(safe_text(f"modelbox pre-push: {problem}", newlines=False), file=sys.stderr)
            if any(not problem.warning for problem in problems):
                print("modelbox pre-push: the push was stopped; fix the problems above "
                      "(`modelbox check`), then push again", file=sys.stderr)
                return 1
            copied = pre_push(registry, url, lines)
        finally:
            registry.close()
    except ModelboxError as exc:
        print(safe_text(f"modelbox pre-push: {exc}; the push was stopped"), file=sys.stderr)
        return 1
    if copied:
        print(safe_text(f"modelbox: {copied} object(s) placed in the store of {url}"),
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
