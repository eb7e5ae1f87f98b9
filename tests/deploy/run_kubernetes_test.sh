#!/bin/sh
# deploy/kubernetes/ offline: `kubectl kustomize` renders it, and
# check_manifests.py finds every field the deployment needs in the rendered
# objects. MODE "mistakes": a copy with the StatefulSet scaled to 4 (but
# cluster.toml still at 3 shards) must be refused, so the checker can fail.
#
# `kubectl apply --dry-run=client` is not run: with or without
# --validate=false it asks the API server for its resource list first
# (kubectl 1.20 and later), so it cannot work without a server.
#
# Usage: run_kubernetes_test.sh SOURCE_DIR SHARDPS_BINARY [mistakes]
set -eu
src=$1
bin=$2
mode=${3:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
kdir=$src/deploy/kubernetes
if [ "$mode" = mistakes ]; then
  cp -r "$kdir" "$tmp/k"
  kdir=$tmp/k
  sed -i 's/^  replicas: 3$/  replicas: 4/' "$kdir/statefulset.yaml"
  grep -q '^  replicas: 4$' "$kdir/statefulset.yaml"
fi
rendered=""
if command -v kubectl >/dev/null 2>&1; then
  kubectl kustomize "$kdir" >"$tmp/rendered.yaml"
  rendered=$tmp/rendered.yaml
else
  echo "note: no kubectl (Debian's kubernetes-client): checking the files" \
    "without rendering them"
fi
if [ "$mode" = mistakes ]; then
  if /usr/bin/python3 "$src/tests/deploy/check_manifests.py" "$kdir" "$bin" \
    $rendered >"$tmp/out" 2>&1; then
    echo "check_manifests.py accepted a StatefulSet of 4 with 3 shards"
    exit 1
  fi
  cat "$tmp/out"
  grep -q "shards must equal the StatefulSet's replicas 4" "$tmp/out"
  grep -q "serve --shards 3 differs from the StatefulSet's replicas 4" \
    "$tmp/out"
  exit 0
fi
exec /usr/bin/python3 "$src/tests/deploy/check_manifests.py" "$kdir" "$bin" \
  $rendered
