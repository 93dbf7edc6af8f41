#!/usr/bin/env bash
# Prints the kubectl `make run` uses: yours, when it is on PATH and at least 1.$MIN_MINOR (CRD
# validation rules and `apply --server-side` as this project uses them); otherwise the one
# tests/controlplane/build.sh builds into the cache (built here first if it is missing).
set -euo pipefail
MIN_MINOR="${KUBECTL_MIN_MINOR:-30}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if theirs="$(command -v kubectl)"; then
  minor="$("$theirs" version --client -o json 2>/dev/null | sed -n 's/.*"minor": *"\([0-9]*\).*/\1/p' | head -1)"
  if [[ -n "$minor" ]] && (( minor >= MIN_MINOR )); then
    echo "$theirs"
    exit 0
  fi
  echo "[kubectl.sh] $theirs is older than 1.$MIN_MINOR (or says no version): using the project's own" >&2
else
  echo "[kubectl.sh] no kubectl on PATH: using the project's own" >&2
fi
bin="$(bash "$HERE/build.sh" | tail -1)"
echo "$bin/kubectl"
