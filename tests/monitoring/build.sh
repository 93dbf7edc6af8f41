#!/usr/bin/env bash
# Build Prometheus and promtool (and, on request, kube-state-metrics) from their Go modules, as
# tests/controlplane/build.sh builds the control plane (whose last step runs this one).
#
#   tests/monitoring/build.sh              # build whatever is missing into the cache
#   BUILD_KSM=1 tests/monitoring/build.sh  # ... and kube-state-metrics
#
# Output: ${INFERENCEOPS_CACHE:-$HOME/.cache/inferenceops}/prometheus/<version>/{prometheus,promtool}
# and .../kube-state-metrics/<version>/kube-state-metrics. The last line printed is Prometheus'
# bin dir.
#
# Knobs (environment):
#   PROMETHEUS_VERSION  module version of github.com/prometheus/prometheus (v0.3XX.Y is
#                       Prometheus 3.XX.Y); default: pinned in tests/monitoring/prometheus/go.mod
#   KSM_VERSION         default: pinned in tests/monitoring/kube-state-metrics/go.mod
#   BUILD_KSM=1         also build kube-state-metrics (not by default: ~8 more minutes on a
#                       fresh machine would take CI's cold run past its 45 minutes;
#                       docs/monitoring.md says what the tests use instead)
#   PROMETHEUS / PROMTOOL / KUBE_STATE_METRICS: binaries to use instead (nothing is built)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_NAME="monitoring/build.sh"
source "$HERE/../controlplane/gobuild.sh"

PINNED_PROM="$(pinned "$HERE/prometheus/go.mod" github.com/prometheus/prometheus)"
PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-$PINNED_PROM}"
PINNED_KSM="$(pinned "$HERE/kube-state-metrics/go.mod" k8s.io/kube-state-metrics/v2)"
KSM_VERSION="${KSM_VERSION:-$PINNED_KSM}"
# v0.316.0 -> 3.16.0: what `prometheus --version` says and the cache directory is named after.
release="${PROMETHEUS_VERSION#v0.}"
release="3.$((10#${release%%.*} - 300)).${release#*.}"
PROM_BIN="$CACHE_ROOT/prometheus/v$release"
KSM_BIN="$CACHE_ROOT/kube-state-metrics/$KSM_VERSION"
mkdir -p "$PROM_BIN"

need_prometheus=1 need_promtool=1 need_ksm=1
[[ -n "${PROMETHEUS:-}" || -x "$PROM_BIN/prometheus" ]] && need_prometheus=0
[[ -n "${PROMTOOL:-}" || -x "$PROM_BIN/promtool" ]] && need_promtool=0
[[ "${BUILD_KSM:-0}" != 1 || -n "${KUBE_STATE_METRICS:-}" || -x "$KSM_BIN/kube-state-metrics" ]] && need_ksm=0
STEPS=$(( need_prometheus + need_promtool + need_ksm ))
if (( STEPS )); then
  # Measured on 2 cores with an empty Go build cache: prometheus 278 s, promtool 122 s (most of
  # it shared with prometheus), kube-state-metrics 496 s.
  minutes=$(( need_prometheus * 5 + need_promtool * 2 + need_ksm * 8 ))
  log "building $STEPS binaries from Go modules into $PROM_BIN: about $minutes minutes on 2 cores"
  log "(once: later runs reuse them; BUILD_PARALLELISM=$P)"
fi

# ---- prometheus, promtool: one module, service discovery other than file/http left out --------
if (( need_prometheus || need_promtool )); then
  moddir="$HERE/prometheus"
  if [[ "$PROMETHEUS_VERSION" != "$PINNED_PROM" ]]; then
    moddir="$(mktemp -d)"
    trap 'rm -rf "$moddir"' EXIT
    cp "$HERE/prometheus/go.mod" "$HERE/prometheus/tools.go" "$moddir/"
    (cd "$moddir" && go mod edit -require "github.com/prometheus/prometheus@$PROMETHEUS_VERSION" \
      && rm -f go.sum && go mod tidy)
  fi
  ld="-s -w -X github.com/prometheus/common/version.Version=$release"
  ld+=" -X github.com/prometheus/common/version.Revision=$PROMETHEUS_VERSION"
  ld+=" -X github.com/prometheus/common/version.Branch=HEAD"
  # remove_all_sd: plugins/plugin_*.go register the cloud service discoveries (AWS, Azure, GCE,
  # Kubernetes, ...) unless this tag is set; file and http SD stay (plugins/minimum.go).
  build_prom() {
    (cd "$moddir" && go build -p "$P" -trimpath -pgo=off -tags remove_all_sd -ldflags "$ld" \
      -o "$PROM_BIN/$1.tmp" "github.com/prometheus/prometheus/cmd/$1") \
      && mv "$PROM_BIN/$1.tmp" "$PROM_BIN/$1"
  }
  (( need_prometheus )) && BIN="$PROM_BIN" timed prometheus build_prom prometheus
  (( need_promtool )) && BIN="$PROM_BIN" timed promtool build_prom promtool
fi

# ---- kube-state-metrics ----------------------------------------------------------------
if (( need_ksm )); then
  mkdir -p "$KSM_BIN"
  build_ksm() {
    local dir="$HERE/kube-state-metrics"
    if [[ "$KSM_VERSION" != "$PINNED_KSM" ]]; then
      dir="$(mktemp -d)"; cp "$HERE/kube-state-metrics/go.mod" "$HERE/kube-state-metrics/tools.go" "$dir/"
      (cd "$dir" && go mod edit -require "k8s.io/kube-state-metrics/v2@$KSM_VERSION" && rm -f go.sum && go mod tidy)
    fi
    (cd "$dir" && go build -p "$P" -trimpath -pgo=off \
      -ldflags "-s -w -X github.com/prometheus/common/version.Version=$KSM_VERSION" \
      -o "$KSM_BIN/kube-state-metrics.tmp" k8s.io/kube-state-metrics/v2) \
      && mv "$KSM_BIN/kube-state-metrics.tmp" "$KSM_BIN/kube-state-metrics"
  }
  BIN="$KSM_BIN" timed kube-state-metrics build_ksm
fi

echo "$PROM_BIN"
