#!/usr/bin/env bash
# Which model, stage and version a pushed promotion tag moved; then the deploy step.
#
#   examples/ci/promotion-event.sh [TAG]
#
# TAG is a Git tag in GTO's format, as `modelbox` makes them with the git-tags setting on
# (docs/gto.md): MODEL#STAGE#N when STAGE moved onto a version, MODEL#STAGE!#N when it
# left one. It defaults to what the CI gives: $GITHUB_REF_NAME (GitHub Actions) or
# $CI_COMMIT_TAG (GitLab CI). Any other tag (MODEL@vX.Y.Z, a release tag) does nothing.
#
# The version is what the registry branch says now (`modelbox resolve --json`), not what
# the tag said when it was made: when two promotions land close together, both runs
# deploy the newer one, so a deploy step that is idempotent is always right.
#
# Runs $MODELBOX_DEPLOY (default: deploy.sh beside this script) with
#   MODELBOX_EVENT    assign | unassign
#   MODELBOX_MODEL    team/model
#   MODELBOX_STAGE    production
#   MODELBOX_VERSION  v1.2.0 (empty when the stage was removed)
#   MODELBOX_GIT_TAG  the tag that fired
# and, on GitHub Actions, writes the same as step outputs (event, model, stage, version).
# Needs `modelbox` on PATH and the registry branch checked out or present as a branch.
set -euo pipefail

tag=${1:-${GITHUB_REF_NAME:-${CI_COMMIT_TAG:-}}}
here=$(cd "$(dirname "$0")" && pwd)
deploy=${MODELBOX_DEPLOY:-$here/deploy.sh}

if [[ ! $tag =~ ^([A-Za-z0-9][A-Za-z0-9/_-]*)#([A-Za-z0-9][A-Za-z0-9_-]*)(!?)#([0-9]+)$ ]]; then
    echo "promotion-event: '$tag' is not a promotion tag (MODEL#STAGE#N); nothing to do"
    exit 0
fi
model=${BASH_REMATCH[1]}
stage=${BASH_REMATCH[2]}
event=assign
[ -n "${BASH_REMATCH[3]}" ] && event=unassign

version=""
errors=$(mktemp)
trap 'rm -f "$errors"' EXIT
if answer=$(modelbox resolve --json "$model:$stage" 2>"$errors"); then
    version=$(printf '%s' "$answer" | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
    event=assign  # the stage names a version now, whatever this (older) tag said
elif grep -q "is not assigned" "$errors"; then
    event=unassign  # the stage names no version now (removed by this tag or a later one)
else
    cat "$errors" >&2  # not a registry, no modelbox, a broken checkout: say so and fail
    exit 1
fi

echo "promotion-event: $tag -> $event $model:$stage${version:+ = $model@$version}"
if [ -n "${GITHUB_OUTPUT:-}" ]; then
    printf 'event=%s\nmodel=%s\nstage=%s\nversion=%s\n' \
        "$event" "$model" "$stage" "$version" >> "$GITHUB_OUTPUT"
fi
MODELBOX_EVENT=$event MODELBOX_MODEL=$model MODELBOX_STAGE=$stage \
MODELBOX_VERSION=$version MODELBOX_GIT_TAG=$tag "$deploy"
