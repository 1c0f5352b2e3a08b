#!/usr/bin/env bash
# Set up .venv with the test extras (SeaweedFS and pre-commit included), then run the
# linters, the type checker and the whole test suite. Extra arguments go to pytest as they
# are (add -n 2 for workers); a whole run (no arguments) spreads the tests over pytest-xdist
# workers: one per core, at most 4 (PYTEST_WORKERS overrides; 0: one process).
# A whole run then runs the smoke tests (pytest -m smoke) on every other supported Python
# found on this machine (python3.X on PATH, else pyenv's), each in its own .venv-3.X kept
# between runs, with only the `smoke` extra; an absent one is skipped with one line. PYTHONS
# overrides the list ("3.10 3.13"; empty: none); FULL_PYTHONS ("3.10 3.13") names those
# that run the whole suite instead (with the `test` extra).
# Measured on 2 cores (other jobs loading the machine, so wall times are upper bounds): the
# suite's 1,875 tests take ~5.5 min of CPU; one process waits on servers, sleeps and
# timeouts for most of its wall time: ~10.9 min in one process, ~3.9 min with 2 workers.
# A smoke .venv-3.X installs in ~45 s (the `test` extra: ~85 s); its 30 tests run in ~50 s
# with 2 workers (~160 s in one process). The whole suite on 3.10 and 3.13 as well would
# add two more suite runs (3.13: 13 min loaded): over CI's ~10 min, so it stays opt-in.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# The distribution was called `modelbox` before it became `modelbox-registry` (that name
# on PyPI is another project): an older checkout's venv must not keep both.
.venv/bin/python -m pip uninstall --quiet --yes modelbox >/dev/null 2>&1 || true
.venv/bin/python -m pip install --quiet -e '.[test]'
# --- training-framework integrations (issue 17; docs/integrations.md): begin ---
# A whole run installs the frameworks the callbacks are tested against (pytest -m
# frameworks), pinned: Keras on JAX's CPU build everywhere; torch only on Python 3.11, where
# `pip install torch==2.13.0` takes the CPU build from this machine's disk (any other torch
# spec pulls a CUDA build of several GB). Elsewhere those tests skip, saying why.
# MODELBOX_FRAMEWORKS=0 skips the install.
if [ $# -eq 0 ] && [ "${MODELBOX_FRAMEWORKS:-1}" != 0 ]; then
    .venv/bin/python -m pip install --quiet keras==3.15.1 jax==0.10.2 jaxlib==0.10.2
    if [ "$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" = 3.11 ]; then
        .venv/bin/python -m pip install --quiet torch==2.13.0 lightning==2.6.6 \
            transformers==5.24.0 accelerate==1.16.0 \
            || echo "test.sh: torch 2.13.0 (CPU) not installable; Lightning and HF tests skip"
    else
        echo "test.sh: torch tests skip (its CPU build is on this disk for Python 3.11 only)"
    fi
fi
# --- training-framework integrations: end ---
# GTO 1.10 in a venv of its own (its pins must not change modelbox's), for the GTO interop
# tests (tests/reach/test_reach_gtotags.py); installed only when missing. Without it those
# tests skip, saying why.
if [ ! -f .venv-gto/.modelbox-stamp ]; then
    if { [ -x .venv-gto/bin/python ] || "$python" -m venv .venv-gto; } &&
        .venv-gto/bin/python -m pip install --quiet --disable-pip-version-check gto==1.10.1; then
        echo "gto==1.10.1" > .venv-gto/.modelbox-stamp
    else
        echo "test.sh: pip install gto==1.10.1 into .venv-gto failed; the GTO tests will skip"
    fi
fi
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
workers() {  # $1 = a venv's python: how many pytest-xdist workers a whole run uses
    "$1" -c 'import os; print(min(os.cpu_count() or 1, 4))'
}
if [ $# -eq 0 ]; then
    .venv/bin/pytest -n "${PYTEST_WORKERS:-$(workers .venv/bin/python)}" --dist worksteal
else
    .venv/bin/pytest "$@"
fi
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
    case " ${FULL_PYTHONS-} " in
        *" $version "*) extra=test tier="the whole suite" select=() ;;
        *) extra=smoke tier="smoke tests" select=(-m smoke) ;;
    esac
    # Reinstalled only when pyproject.toml or the extra changed since (a stamp file).
    stamp="$(sha256sum pyproject.toml | cut -d' ' -f1) $extra"
    if [ "$(cat "$venv/.modelbox-stamp" 2>/dev/null)" != "$stamp" ]; then
        [ -x "$venv/bin/python" ] || "$interpreter" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile \
            -e ".[$extra]"
        echo "$stamp" > "$venv/.modelbox-stamp"
    fi
    echo "test.sh: $tier on Python $version ($interpreter)"
    "$venv/bin/python" -X dev -m pytest -q ${select[@]+"${select[@]}"} -p no:cacheprovider \
        -n "${PYTEST_WORKERS:-$(workers "$venv/bin/python")}" --dist worksteal
done
