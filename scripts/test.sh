#!/usr/bin/env bash
# Set up .venv with the test extras (SeaweedFS and pre-commit included), then run the
# linters, the type checker and the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# The distribution was called `modelbox` before it became `modelbox-registry` (that name
# on PyPI is another project): an older checkout's venv must not keep both.
.venv/bin/python -m pip uninstall --quiet --yes modelbox >/dev/null 2>&1 || true
.venv/bin/python -m pip install --quiet -e '.[test]'
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/pytest "$@"
# The benchmark's quick mode (small sizes, no verdicts, no peers), so that it never rots;
# only for a whole run, not when pytest arguments narrow it.
if [ $# -eq 0 ]; then
    .venv/bin/python bench/run.py --quick --no-peers
fi
