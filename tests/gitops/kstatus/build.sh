#!/usr/bin/env bash
# Build the kstatus checker (tests/gitops/kstatus/main.go) once per machine.
#
#   tests/gitops/kstatus/build.sh
#
# Output: ${INFERENCEOPS_CACHE:-$HOME/.cache/inferenceops}/tools/kstatus-<cli-utils version>
# (skipped when that file is already there). The last line printed (stdout) is the binary's path;
# progress and the time the build took go to stderr.
#
# Knobs (environment):
#   BUILD_PARALLELISM  go build -p (default 1: this shares 2 cores with the control-plane build)
#   KSTATUS_BIN        when set and executable, nothing is built and it is printed as is.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export GOTOOLCHAIN=local
export CGO_ENABLED=0
export GOWORK=off
export GOFLAGS="${GOFLAGS:-} -mod=mod"
P="${BUILD_PARALLELISM:-1}"

log() { printf '[kstatus/build.sh] %s\n' "$*" >&2; }

if [[ -n "${KSTATUS_BIN:-}" && -x "${KSTATUS_BIN}" ]]; then
  echo "$KSTATUS_BIN"
  exit 0
fi

VERSION="$(awk '$1=="sigs.k8s.io/cli-utils" && $2 ~ /^v/ {print $2; exit}
                $1=="require" && $2=="sigs.k8s.io/cli-utils" {print $3; exit}' "$HERE/go.mod")"
[[ -n "$VERSION" ]] || { log "no sigs.k8s.io/cli-utils version in $HERE/go.mod"; exit 1; }

CACHE_ROOT="${INFERENCEOPS_CACHE:-$HOME/.cache/inferenceops}"
OUT="$CACHE_ROOT/tools/kstatus-$VERSION"

if [[ -x "$OUT" ]]; then
  log "already built: $OUT"
  echo "$OUT"
  exit 0
fi

mkdir -p "$CACHE_ROOT/tools"
log "building kstatus checker against sigs.k8s.io/cli-utils@$VERSION (go build -p $P; may be slow)"
t0=$(date +%s)
tmp="$OUT.tmp.$$"
trap 'rm -f "$tmp"' EXIT
(cd "$HERE" && go build -p "$P" -trimpath -ldflags "-s -w" -o "$tmp" .)
mv "$tmp" "$OUT"
t1=$(date +%s)
log "built $OUT in $((t1 - t0)) s ($(du -h "$OUT" | cut -f1))"
echo "$OUT"
