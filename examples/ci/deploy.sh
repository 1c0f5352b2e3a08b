#!/usr/bin/env bash
# ===========================================================================================
#  STUB — FILL THIS IN. examples/ci/promotion-event.sh runs it when a promotion tag is
#  pushed, with MODELBOX_EVENT (assign|unassign), MODELBOX_MODEL, MODELBOX_STAGE,
#  MODELBOX_VERSION (empty on unassign) and MODELBOX_GIT_TAG in its environment.
#  Make it idempotent: two promotions close together may both deploy the newer version.
# ===========================================================================================
set -euo pipefail

if [ "$MODELBOX_EVENT" = unassign ]; then
    echo "deploy (stub): $MODELBOX_MODEL:$MODELBOX_STAGE names no version now; nothing to deploy"
    exit 0
fi
echo "deploy (stub): would deploy $MODELBOX_MODEL@$MODELBOX_VERSION to $MODELBOX_STAGE"
# For example:
#   modelbox get "$MODELBOX_MODEL@$MODELBOX_VERSION" -o model/
#   kubectl set image deployment/"${MODELBOX_MODEL//\//-}" server=registry.example.com/...
