#!/usr/bin/env bash
# Install the Debian packages a LocalNode (tests/node/localnode.py) and the e2e image recipe need.
# Idempotent and fast when all are there: dpkg is asked first; apt-get update runs only when
# something is missing. Exits 1 with one line on stderr when apt-get cannot install them.
set -euo pipefail

PACKAGES=(
  containerd runc containernetworking-plugins # the container runtime and the pod network
  iptables iproute2 util-linux                # node network rules, the bridge, nsenter
  nftables                                    # `nft`: drops the tables iptables-nft created
  catatonit umoci skopeo                      # the pause image (catatonit -P, packed by umoci)
  mmdebstrap                                  # the e2e image's root filesystem
)

missing=()
for p in "${PACKAGES[@]}"; do
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" == installed ]] || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "[install.sh] node packages already installed" >&2
  exit 0
fi

fail() { echo "[install.sh] $*" >&2; exit 1; }
command -v apt-get >/dev/null || fail "no apt-get here: install ${missing[*]} with the system's package manager"
((EUID == 0)) || fail "missing ${missing[*]}; run as root: sudo bash $0"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
echo "[install.sh] installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# --no-install-recommends: containerd would otherwise pull in a docker-like stack we do not use.
if ! apt-get update -qq >"$log" 2>&1 ||
  ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
  fail "apt-get could not install ${missing[*]}: $(grep -E '^(E|Err):' "$log" | tail -1 || tail -1 "$log")"
fi
echo "[install.sh] installed ${missing[*]}" >&2
