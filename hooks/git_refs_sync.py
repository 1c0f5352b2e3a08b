"""``modelbox-git-refs-sync``: the ``post-merge``, ``post-checkout`` and ``post-rewrite`` hook.

Rebuilds ``refs/modelbox/tags/*`` from the registry branch after git moved it (``git pull``,
``git merge``, ``git rebase``...). Git ignores these hooks' exit codes; a failure is still
reported on stderr and with exit code 1.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from modelbox.errors import ModelboxError
from modelbox.redact import safe_text
from modelbox.registry import Registry


def main(argv: Sequence[str] | None = None) -> int:
    # Arguments (the hook's name, then what git passes it) do not change what is done.
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["post-rewrite"]:
        sys.stdin.read()  # the list of rewritten commits: not needed, but git writes it
    try:
        registry = Registry.open(Path.cwd())
        try:
            changed = registry.sync_refs()
        finally:
            registry.close()
    except ModelboxError as exc:
        print(safe_text(f"modelbox refs sync: {exc}; run `modelbox refs sync`"), file=sys.stderr)
        return 1
    if changed:
        print(f"modelbox: {len(changed)} tag ref(s) synced", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
