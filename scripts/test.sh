#!/usr/bin/env bash
# Set up .venv with the test extras (SeaweedFS and pre-commit included), then run the
# linters and the type checker once, and the tests. Extra arguments go to pytest on .venv as
# they are (add -n 2 for workers); nothing else runs then. A whole run (no arguments):
#  * the whole suite on the newest supported Python, 3.13 (FULL_PYTHONS overrides), and
#    the same but the `stress` and `browser` tiers on the oldest, 3.10 (FAST_PYTHONS
#    overrides): kill -9 loops and a headless browser test processes and a page, not the
#    Python they run on, so they run once. Each in its own .venv-3.X (the `test` extra)
#    kept between runs, under -X dev (warnings are errors: pyproject's filterwarnings),
#    all but the `frameworks` tier;
#  * on .venv (the default python3, 3.11 here: the only Python with torch's CPU wheel on
#    this disk) the smoke tests and the `frameworks` tier, then the quick benchmark; on
#    any other supported Python found (3.12), the smoke tests (the `smoke` extra only);
#  * .venv runs the whole suite itself when it is one of FULL_PYTHONS, or when none of
#    them is found (python3.X on PATH, else pyenv's; an absent one is one line).
# PYTHONS narrows the Pythons tried ("3.10 3.13"); tests spread over pytest-xdist workers,
# one per core, at most 4 (PYTEST_WORKERS overrides; 0: one process).
# Measured 2026-12-02 on 2 cores shared with other engineers' runs (load average 3-8, so
# upper bounds; a quiet machine gives about half): the whole suite (2,056 tests) under
# -X dev took 12.5 min on 3.13 (8.9 min of CPU) and 14.0 min on 3.10 (8.5 min of CPU), with
# 2 workers; 3.10 again at load 0.1-3: 5.5 min (7.2 min of CPU); smoke + frameworks on
# 3.11 1.5 min; smoke on 3.12 20 s; the quick benchmark ~1.5 min; ruff and
# mypy ~1 min; a new .venv-3.X ~85 s (`smoke` extra ~45 s), the frameworks ~2 min, each
# once. A whole run: ~32 min loaded, ~15-17 min quiet (CI allows 90). --durations found
# the waste cut then: the packaging test copied every .venv-3.X (~1 GB) into its build
# (29 s -> 3.5 s), and two fixtures built per test what one build per run serves.
# On 2026-12-04 a slow host made the same run (two whole suites) take 84 min, each whole
# suite 28-30 min: hence the stress and browser tiers on one Python only since.
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
if [ $# -gt 0 ]; then
    exec .venv/bin/pytest "$@"
fi

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
full_pythons=${FULL_PYTHONS-3.13}
fast_pythons=${FAST_PYTHONS-3.10}
is_full() { case " $full_pythons " in *" $1 "*) return 0 ;; esac; return 1; }
is_fast() { case " $fast_pythons " in *" $1 "*) return 0 ;; esac; return 1; }
# Which Pythons run what: found before anything runs, so that the default interpreter runs
# the whole suite itself when no other one will (none of FULL_PYTHONS found, or empty).
declare -A interpreters=()
others_full=0
for version in ${PYTHONS-3.10 3.11 3.12 3.13}; do
    [ "$version" = "$default" ] && continue
    interpreter=$(find_python "$version" || true)
    if [ -z "$interpreter" ]; then
        echo "test.sh: Python $version not found (python$version, pyenv); its tests skipped"
        continue
    fi
    interpreters[$version]=$interpreter
    if is_full "$version"; then others_full=1; fi
done

# The default interpreter (.venv): the whole suite when it is one of FULL_PYTHONS or no
# other Python runs it; otherwise the smoke tests and the `frameworks` tier (torch's CPU
# wheel exists here for 3.11 only, so this is where the framework callbacks are tested).
if is_full "$default" || [ "$others_full" = 0 ]; then
    echo "test.sh: the whole suite on Python $default (.venv)"
    .venv/bin/pytest -n "${PYTEST_WORKERS:-$(workers .venv/bin/python)}" --dist worksteal
else
    echo "test.sh: smoke tests and the frameworks tier on Python $default (.venv)"
    .venv/bin/pytest -m 'smoke or frameworks' \
        -n "${PYTEST_WORKERS:-$(workers .venv/bin/python)}" --dist worksteal
fi
# The benchmark's quick mode (small sizes, no verdicts, no peers), so that it never rots;
# only for a whole run, not when pytest arguments narrow it.
.venv/bin/python bench/run.py --quick --no-peers

# The other supported Pythons, each in its own .venv-3.X kept between runs, under -X dev
# (its warnings are errors here: pyproject's filterwarnings): FULL_PYTHONS run the whole
# suite but the frameworks tier (with the `test` extra), FAST_PYTHONS the same but the
# stress and browser tiers too, the others the smoke tests (with only the `smoke` extra).
for version in ${PYTHONS-3.10 3.11 3.12 3.13}; do
    interpreter=${interpreters[$version]-}
    [ -n "$interpreter" ] || continue
    venv=.venv-$version
    if is_full "$version"; then
        extra=test tier="the whole suite (but the frameworks tier)" select=(-m 'not frameworks')
    elif is_fast "$version"; then
        extra=test tier="the whole suite but the frameworks, stress and browser tiers"
        select=(-m 'not frameworks and not stress and not browser')
    else
        extra=smoke tier="smoke tests" select=(-m smoke)
    fi
    # Reinstalled only when pyproject.toml or the extra changed since (a stamp file).
    stamp="$(sha256sum pyproject.toml | cut -d' ' -f1) $extra"
    if [ "$(cat "$venv/.modelbox-stamp" 2>/dev/null)" != "$stamp" ]; then
        [ -x "$venv/bin/python" ] || "$interpreter" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile \
            -e ".[$extra]"
        echo "$stamp" > "$venv/.modelbox-stamp"
    fi
    echo "test.sh: $tier on Python $version ($interpreter)"
    "$venv/bin/python" -X dev -m pytest -q "${select[@]}" -p no:cacheprovider \
        -n "${PYTEST_WORKERS:-$(workers "$venv/bin/python")}" --dist worksteal
done
