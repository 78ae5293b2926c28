#!/usr/bin/env bash
# Runs scripts/quickstart against BUILD with a gateway that takes a second to start, as one
# that writes its WAL out on a slow disk does: quickstart must wait for the gateway's folders
# instead of failing on them (it once ended at once, exit 1, when they were not there yet).
# Usage: quickstart_slow_gateway.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
tree=$(mktemp -d /tmp/mhhs-slow-gateway.XXXXXX)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/gateway/main" "$tree/tests"
printf '#!/bin/sh\nsleep 1\nexec %s/gateway/main/mhhs-gatewayd "$@"\n' "$build" >"$tree/gateway/main/mhhs-gatewayd"
chmod +x "$tree/gateway/main/mhhs-gatewayd"
ln -s "$build/gateway/main/mhhs-gatewayctl" "$tree/gateway/main/mhhs-gatewayctl"
GW_QUICKSTART_BUILD="$tree" "$src/scripts/quickstart"
