"""``modelbox-no-raw-artifacts``: keep artifacts out of Git, pointers in."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from modelbox.redact import safe_text
from modelbox.validate import raw_artifacts, repository_root


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="modelbox-hook-no-raw-artifacts",
        description="Refuse files under models/ or experiments/ that are no modelbox "
        "document (weights, checkpoints, datasets), and anywhere in the repository files "
        "with a weight extension (.pt, .safetensors, .ckpt...) or over --max-kb.",
    )
    parser.add_argument("--max-kb", type=int, default=1024, metavar="KB",
                        help="largest file allowed in Git (default 1024)")
    parser.add_argument("files", nargs="*", help="files to check (pre-commit passes them)")
    args = parser.parse_args(argv)
    problems = raw_artifacts(repository_root(Path.cwd()), args.files, max_kb=args.max_kb)
    for problem in problems:
        print(safe_text(str(problem)))
    return 1 if problems else 0
