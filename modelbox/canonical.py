"""Canonical JSON: sorted keys, 2-space indent, UTF-8, trailing newline — minimal diffs."""

from __future__ import annotations

import json
from typing import Any


def dumps(document: Any) -> str:
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def encode(document: Any) -> bytes:
    return dumps(document).encode("utf-8")
