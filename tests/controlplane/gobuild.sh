# Shared by the scripts that build test binaries from Go modules (tests/controlplane/build.sh,
# tests/monitoring/build.sh): one environment, so every build shares Go's module and build caches.
# Sourced, not run. The sourcing script sets BIN (where `timed` finds what it built) and may set
# LOG_NAME (the prefix of its lines).
export GOTOOLCHAIN=local
export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -mod=mod"
export GOWORK=off
P="${BUILD_PARALLELISM:-$(nproc 2>/dev/null || echo 2)}"
CACHE_ROOT="${INFERENCEOPS_CACHE:-$HOME/.cache/inferenceops}"

log() { printf '[%s] %s\n' "${LOG_NAME:-build.sh}" "$*" >&2; }
pinned() { # pinned <go.mod> <module path>
  [[ -f "$1" ]] || return 0
  awk -v m="$2" '$1==m && $2 ~ /^v/ {print $2; exit} $1=="require" && $2==m {print $3; exit}' "$1"
}

# timed <name> <cmd...>: "[k/N] building <name>", a line a minute while Go works (a quiet
# terminal for 8 minutes looks hung), and how long it took.
STEP=0 STEPS=0
HEARTBEAT="${BUILD_HEARTBEAT_SECONDS:-60}"
timed() {
  local name="$1" t0 t1 beat rc=0; shift
  STEP=$((STEP + 1))
  t0=$(date +%s)
  log "[$STEP/$STEPS] building $name ..."
  ( while sleep "$HEARTBEAT"; do log "    ... still building $name ($(( $(date +%s) - t0 )) s)"; done ) &
  beat=$!
  "$@" || rc=$?
  kill "$beat" 2>/dev/null; wait "$beat" 2>/dev/null || true
  (( rc == 0 )) || return "$rc"
  t1=$(date +%s)
  log "[$STEP/$STEPS] $name built in $((t1 - t0)) s ($(du -h "$BIN/$name" | cut -f1))"
}
