#!/usr/bin/env bash
# Set up .venv, then walk through a registry on the embedded default (a local Git
# repository and a local object store) in a fresh temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# The distribution was called `modelbox` before it became `modelbox-registry` (that name
# on PyPI is another project): an older checkout's venv must not keep both.
.venv/bin/python -m pip uninstall --quiet --yes modelbox >/dev/null 2>&1 || true
.venv/bin/python -m pip install --quiet -e .
export PATH="$PWD/.venv/bin:$PATH"

work=$(mktemp -d)
cd "$work"
run() { printf '\n$ %s\n' "$*"; "$@"; }

# Every registry change is a commit whose author is you: like git, modelbox refuses to
# commit without a Git identity. Where none is configured, give this temporary registry one.
if [ -z "${GIT_AUTHOR_EMAIL:-}${EMAIL:-}" ] && ! git config user.email >/dev/null; then
    git init -q -b main reg
    git -C reg config user.name "Quickstart"
    git -C reg config user.email "quickstart@example.com"
    printf '(no Git identity configured: this registry commits as Quickstart <quickstart@example.com>)\n'
fi
run modelbox init reg
cd reg
run modelbox model create ai/vision/yolo --owner ml@example.com --task object_detection \
    --description "YOLO v4" --meta team=vision
run modelbox version create ai/vision/yolo v1 --framework pytorch --meta epochs=40 --tag staging
run modelbox version create ai/vision/yolo v2 --framework pytorch
run modelbox tag ai/vision/yolo@v2 staging
run modelbox resolve ai/vision/yolo:staging
run modelbox meta set ai/vision/yolo@v2 dataset '"coco-2017"'
run modelbox version list ai/vision/yolo
mkdir -p "$work/weights/hf-export"
head -c 2000000 /dev/urandom > "$work/weights/model.pt"
echo '{"hidden_size": 64}' > "$work/weights/hf-export/config.json"
head -c 500000 /dev/urandom > "$work/weights/hf-export/model.safetensors"
run modelbox artifact add ai/vision/yolo@v2 "$work/weights/model.pt" --type MODEL
run modelbox artifact add ai/vision/yolo@v2 "$work/weights/hf-export"
run modelbox artifact list ai/vision/yolo@v2
# A path the version has already is replaced only when asked; the log shows before -> after.
head -c 2000000 /dev/urandom > "$work/weights/model.pt"
run modelbox artifact add ai/vision/yolo@v2 "$work/weights/model.pt" --replace
run modelbox get ai/vision/yolo:staging -o "$work/deploy"
# production is a protected tag: it releases v2 (its artifacts are frozen from now on)
run modelbox tag ai/vision/yolo@v2 production
run modelbox get ai/vision/yolo:production -o "$work/production"
run modelbox version create ai/vision/yolo v3 --from ai/vision/yolo:production
run find "$work/deploy" -type f
# Inside the registry (-o . is the default), what get places is listed in .git/info/exclude,
# so `git add -A` never commits the weights.
run modelbox get ai/vision/yolo:staging
run git status --short
run modelbox log ai/vision/yolo
run git for-each-ref refs/modelbox
run git log --oneline
run modelbox check
printf '\nThe registry is in %s\n' "$work/reg"
