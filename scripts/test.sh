#!/usr/bin/env bash
# Set up .venv with the test extras (SeaweedFS and pre-commit included), then run the
# linters, the type checker and the whole test suite. Extra arguments go to pytest.
# A whole run (no arguments) then runs the smoke tests (pytest -m smoke) on every other
# supported Python found on this machine (python3.X on PATH, else pyenv's), each in its own
# .venv-3.X kept between runs; an absent one is skipped with one line. PYTHONS overrides
# the list ("3.10 3.13"; empty: none).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# The distribution was called `modelbox` before it became `modelbox-registry` (that name
# on PyPI is another project): an older checkout's venv must not keep both.
.venv/bin/python -m pip uninstall --quiet --yes modelbox >/dev/null 2>&1 || true
.venv/bin/python -m pip install --quiet -e '.[test]'
# --- browser tests (issue 18; tests/web/browser, docs/web-testing.md) -----------------------
# Debian's Chromium and ChromeDriver, installed when missing: as root or with passwordless
# sudo (~50 s here, Dec 2026); otherwise the browser tests skip, saying why.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    apt_get=()
    if [ "$(id -u)" = 0 ]; then apt_get=(apt-get); elif sudo -n true 2>/dev/null; then
        apt_get=(sudo -n apt-get); fi
    if [ ${#apt_get[@]} -eq 0 ]; then
        echo "test.sh: no root or passwordless sudo to install chromium; browser tests skip"
    else
        export DEBIAN_FRONTEND=noninteractive
        "${apt_get[@]}" install -y -qq chromium chromium-driver >/dev/null \
            || { "${apt_get[@]}" update -qq && "${apt_get[@]}" install -y -qq chromium \
                 chromium-driver >/dev/null; } \
            || echo "test.sh: apt-get install chromium chromium-driver failed; browser tests skip"
    fi
fi
# --- end of browser tests ------------------------------------------------------------------
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/pytest "$@"
# The benchmark's quick mode (small sizes, no verdicts, no peers), so that it never rots;
# only for a whole run, not when pytest arguments narrow it.
if [ $# -eq 0 ]; then
    .venv/bin/python bench/run.py --quick --no-peers
fi
[ $# -eq 0 ] || exit 0

# The smoke tests on the other supported Pythons.
find_python() {  # $1 = 3.X: print a working interpreter's path, or nothing
    local root=${PYENV_ROOT:-$HOME/.pyenv} candidate
    # pyenv's shims answer for versions they cannot run: each candidate must run and be 3.X.
    for candidate in "$(command -v "python$1" 2>/dev/null)" \
            $(ls -d "$root"/versions/"$1".*/bin/python 2>/dev/null | sort -rV); do
        if [ -n "$candidate" ] && [ "$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$1" ]; then
            echo "$candidate"
            return
        fi
    done
}
default=$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
for version in ${PYTHONS-3.10 3.11 3.12 3.13}; do
    [ "$version" = "$default" ] && continue
    interpreter=$(find_python "$version" || true)
    if [ -z "$interpreter" ]; then
        echo "test.sh: Python $version not found (python$version, pyenv); its smoke tests skipped"
        continue
    fi
    venv=.venv-$version
    # Reinstalled only when pyproject.toml changed since (its hash in a stamp file).
    stamp=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ "$(cat "$venv/.modelbox-stamp" 2>/dev/null)" != "$stamp" ]; then
        [ -x "$venv/bin/python" ] || "$interpreter" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[test]'
        echo "$stamp" > "$venv/.modelbox-stamp"
    fi
    echo "test.sh: smoke tests on Python $version ($interpreter)"
    "$venv/bin/python" -X dev -m pytest -q -m smoke -p no:cacheprovider
done
