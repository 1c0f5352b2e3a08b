"""``modelbox-format``: rewrite registry documents as canonical JSON, in place."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from modelbox.redact import safe_text
from modelbox.validate import format_files, repository_root


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="modelbox-hook-format",
        description="Rewrite registry documents as canonical JSON (sorted keys, 2-space "
        "indent, UTF-8, trailing newline). Exit 1 if a file changed or cannot be formatted.",
    )
    parser.add_argument("files", nargs="*", help="files to format (pre-commit passes them)")
    args = parser.parse_args(argv)
    changed, problems = format_files(repository_root(Path.cwd()), args.files)
    for path in changed:
        print(safe_text(f"{path}: rewritten as canonical JSON; review and stage it"))
    for problem in problems:
        print(safe_text(str(problem)))
    return 1 if changed or problems else 0
