"""``modelbox-git-pre-push``: the Git ``pre-push`` hook that ``modelbox install-hooks`` writes.

Git runs it as ``pre-push REMOTE URL`` with one line per ref on stdin; it places every
object the pushed pointers need in the remote's store, or exits 1 so git sends nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from modelbox.errors import ModelboxError
from modelbox.githooks import pre_push
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
    try:
        registry = Registry.open(Path.cwd())
        try:
            copied = pre_push(registry, url, sys.stdin.read().splitlines())
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
