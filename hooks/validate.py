"""``modelbox-validate``: schemas and registry invariants for the files being committed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from modelbox.errors import ModelboxError
from modelbox.redact import safe_text
from modelbox.validate import repository_root, validate_worktree


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="modelbox-hook-validate",
        description="Check registry files against schemas/ and the registry's invariants; "
        "tag-ref drift is a warning. Exit 1 on any error.",
    )
    parser.add_argument("files", nargs="*", help="files to check (pre-commit passes them)")
    args = parser.parse_args(argv)
    try:
        problems = validate_worktree(repository_root(Path.cwd()), args.files)
    except ModelboxError as exc:
        print(safe_text(f"modelbox-validate: {exc}"), file=sys.stderr)
        return 1
    for problem in problems:
        print(safe_text(f"warning: {problem}" if problem.fixable else str(problem)))
    return 1 if any(not p.fixable for p in problems) else 0
