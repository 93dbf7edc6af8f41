#!/usr/bin/env bash
# Builds the operator's OCI image without a Docker engine, with the contract of ../Dockerfile:
# a Debian 12 root filesystem (mmdebstrap) as the base layer, /opt/venv with the project's wheel
# and its locked dependencies as the app layer, packed by umoci into an OCI archive.
#
#   bash image/build.sh [--rebuild-base] [--rebuild]   build (or reuse) the archive
#   bash image/build.sh --lock                          re-resolve image/*.lock from pyproject.toml
#
# The last line of stdout is the archive's absolute path; progress goes to stderr. Environment:
# IMAGE_NAME, IMAGE_TAG, IMAGE_OUT_DIR, INFERENCEOPS_CACHE, SOURCE_DATE_EPOCH, PYTHON (a host
# Python with pip, for downloading wheels), REBUILD_BASE=1, REBUILD=1. See image/README.md.
set -euo pipefail
umask 022      # file modes in the layers must not depend on the caller's umask
exec 3>&1 1>&2 # stdout is only for the archive path

me=image/build.sh
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "$me: $*" >&2; exit 1; }
say() { echo "$me: $*" >&2; }

app_version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' \
  "$repo/charts/inferenceops/Chart.yaml")
IMAGE_NAME=${IMAGE_NAME:-inferenceops}
IMAGE_TAG=${IMAGE_TAG:-$app_version}
cache=${INFERENCEOPS_CACHE:-$HOME/.cache/inferenceops}
IMAGE_OUT_DIR=${IMAGE_OUT_DIR:-$cache/images}
PYTHON=${PYTHON:-$repo/.venv/bin/python}

# ---- image contract: what the Dockerfile's runtime stage declares ------------------------------
# image/contract.py parses this block and tests/unit/test_image_contract.py compares it with the
# Dockerfile: change both together. PATH is the Dockerfile's /opt/venv/bin:$PATH with Debian's
# default PATH as $PATH.
IMAGE_PYTHON=3.11
IMAGE_USER=65532:65532
IMAGE_WORKDIR=/
IMAGE_ENTRYPOINT=(inferenceops)
IMAGE_CMD=(run)
IMAGE_PORTS=(8081/tcp 9090/tcp)
IMAGE_ENV=(
  PYTHONDONTWRITEBYTECODE=1
  PYTHONUNBUFFERED=1
  VIRTUAL_ENV=/opt/venv
  PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
)
IMAGE_LABELS=(
  org.opencontainers.image.title=inferenceops
  "org.opencontainers.image.description=Kubernetes operator reporting the live status of remote model-inference endpoints"
  "org.opencontainers.image.version=$IMAGE_TAG"
  org.opencontainers.image.licenses=Apache-2.0
)
# ---- end of image contract ---------------------------------------------------------------------

BASE_SUITE=bookworm # its python3 is $IMAGE_PYTHON (checked after the build)
BASE_PACKAGES=python3,ca-certificates
# Tags of the wheels the image's CPython (Debian 12: glibc 2.36, x86_64) loads.
WHEEL_TARGET=(--only-binary=:all: --implementation cp --python-version "$IMAGE_PYTHON"
  --abi "cp${IMAGE_PYTHON/./}" --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64)

rebuild_base=${REBUILD_BASE:-0} rebuild=${REBUILD:-0} mode=build
for arg; do
  case $arg in
    --rebuild-base) rebuild_base=1 ;;
    --rebuild) rebuild=1 ;;
    --lock) mode=lock ;;
    -h | --help) sed -n '2,11s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown argument '$arg' (see image/README.md)" ;;
  esac
done
[[ $rebuild_base == 1 ]] && rebuild=1

[[ $mode == lock || $EUID -eq 0 ]] ||
  die "must run as root (mmdebstrap in root mode, chroot): sudo make image"
[[ -n $IMAGE_TAG ]] || die "no IMAGE_TAG and no appVersion in charts/inferenceops/Chart.yaml"
"$PYTHON" -m pip --version >/dev/null 2>&1 ||
  die "no Python with pip at $PYTHON: run \`make venv\` or set PYTHON"
contract() { "$PYTHON" "$repo/image/contract.py" "$@"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/inferenceops-image.XXXXXX")
partial=() # cache entries and the archive while they are being written
cleanup() {
  # A killed mmdebstrap can leave /proc, /sys or /dev mounted inside its chroot: unmount those
  # and never let rm cross into another file system.
  awk -v w="$work/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" || true; done
  rm -rf --one-file-system "$work" "${partial[@]}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- --lock: resolve the newest versions allowed by pyproject.toml for the image's Python -------
if [[ $mode == lock ]]; then
  mapfile -t deps < <(contract dependencies)
  mapfile -t build_deps < <(contract build-requires)
  resolve() { # report, requirements...
    local report=$1; shift
    "$PYTHON" -m pip install --quiet --dry-run --ignore-installed "${WHEEL_TARGET[@]}" \
      --target "$work/target" --report "$report" "$@"
  }
  resolve "$work/runtime.json" "${deps[@]}"
  resolve "$work/build.json" pip "${build_deps[@]}"
  contract lock runtime "$work/runtime.json" >"$repo/image/requirements.lock"
  contract lock build "$work/build.json" >"$repo/image/build-tools.lock"
  say "wrote image/requirements.lock and image/build-tools.lock"
  exit 0
fi

# ---- checks ------------------------------------------------------------------------------------
for tool in mmdebstrap umoci dpkg-deb chroot mknod tar gzip sha256sum flock; do
  command -v "$tool" >/dev/null ||
    die "$tool not found: run \`bash tests/node/install.sh\` or \`apt-get install mmdebstrap umoci\`"
done
merged_usr_hooks=/usr/share/mmdebstrap/hooks/merged-usr
[[ -d $merged_usr_hooks ]] || die "$merged_usr_hooks missing: mmdebstrap >= 1.0 is needed"
inputs=$(contract inputs-digest)
for lock in requirements.lock build-tools.lock; do
  grep -qx "# inputs: $inputs" "$repo/image/$lock" ||
    die "image/$lock does not match pyproject.toml: run \`bash image/build.sh --lock\`"
done

export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -c safe.directory="$repo" -C "$repo" \
  log -1 --format=%ct 2>/dev/null || echo 1704067200)}
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)

mkdir -p "$cache/image-build" "$IMAGE_OUT_DIR"
exec 9>"$cache/image-build/.lock"
flock -n 9 || { say "waiting for another image build to finish"; flock -w 1800 9 || die "gave up"; }

digest() { sha256sum | cut -d' ' -f1; }

# Runs a command inside a root file system with a clean environment.
in_root() { # root, [chroot options...] --, command...
  local root=$1 opts=(); shift
  while [[ $1 != -- ]]; do opts+=("$1"); shift; done; shift
  chroot "${opts[@]}" "$root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/tmp LC_ALL=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_NO_INPUT=1 "$@"
}

# A layer tarball whose bytes depend only on the files: sorted, no atime/ctime, no pid in pax
# header names, mtimes clamped to SOURCE_DATE_EPOCH, numeric owners.
layer_tar() { # root, output, paths...
  local root=$1 out=$2; shift 2
  tar --create --file="$out" --directory="$root" --sort=name --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime --numeric-owner --exclude='./dev/*' "$@"
}

# ---- base layer: Debian with python3 and ca-certificates, keyed by this function's text --------
build_base() { # empty directory for the root file system
  local root=$1
  # essential variant: no apt in the image; the merged-usr hooks avoid usrmerge and its perl.
  mmdebstrap --variant=essential --include="$BASE_PACKAGES" --hook-dir="$merged_usr_hooks" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    "$BASE_SUITE" "$root"
  # The Dockerfile's non-root user (the distroless "nonroot" uid the chart runs as).
  echo "nonroot:x:${IMAGE_USER%:*}:${IMAGE_USER#*:}::/nonexistent:/usr/sbin/nologin" \
    >>"$root/etc/passwd"
  echo "nonroot:x:${IMAGE_USER#*:}:" >>"$root/etc/group"
  # mmdebstrap copies these from the host; the container runtime mounts its own.
  : >"$root/etc/resolv.conf"
  : >"$root/etc/hostname"
  chmod 644 "$root/etc/resolv.conf" "$root/etc/hostname"
  # Debian's .pyc check the source mtime, which the layer's clamped mtimes can break; hash-based
  # unchecked .pyc never go stale and need no stat at import on the read-only root file system.
  in_root "$root" -- python3 -m compileall -q -f --invalidation-mode unchecked-hash \
    "/usr/lib/python$IMAGE_PYTHON"
  local minor
  minor=$(in_root "$root" -- python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  [[ $minor == "$IMAGE_PYTHON" ]] || die "$BASE_SUITE has Python $minor, not $IMAGE_PYTHON"
  ! in_root "$root" -- python3 -c 'import pip' 2>/dev/null || die "pip in the base layer"
}

base_key=$( {
  declare -f build_base
  declare -p BASE_SUITE BASE_PACKAGES IMAGE_USER IMAGE_PYTHON
  mmdebstrap --version
} | digest)
base=$cache/image-build/base-$base_key # OCI layout holding only the base layer, tag "base"

# The compressed blob of the last layer of image dir:tag.
last_layer() { "$PYTHON" "$repo/image/contract.py" last-layer "$1" "$2"; }

rootfs=$work/rootfs
if [[ $rebuild_base == 1 || ! -f $base/index.json ]]; then
  say "building the base layer ($BASE_SUITE, $BASE_PACKAGES): about a minute"
  build_base "$rootfs"
  layer_tar "$rootfs" "$work/base.tar" .
  partial+=("$base.tmp")
  rm -rf "$base" "$base.tmp"
  umoci init --layout "$base.tmp"
  umoci new --image "$base.tmp:base"
  umoci raw add-layer --image "$base.tmp:base" --history.created "$created" \
    --history.created_by "mmdebstrap --variant=essential --include=$BASE_PACKAGES $BASE_SUITE" \
    "$work/base.tar"
  rm "$work/base.tar"
  mv "$base.tmp" "$base"
  find "$cache/image-build" -maxdepth 1 -name 'base-*' ! -name "base-$base_key" \
    -exec rm -rf {} +
fi
base_layer=$(last_layer "$base" base)

# ---- the archive, keyed by every input -------------------------------------------------------
sources=(pyproject.toml README.md operator)
locks=("$repo/image/requirements.lock" "$repo/image/build-tools.lock")
source_files() {
  find "${sources[@]}" -type f ! -path '*/__pycache__/*' ! -path '*.egg-info/*' \
    ! -name '*.py[cod]' -print0 | LC_ALL=C sort -z
}
key=$( {
  echo "base $base_key $base_layer"
  (cd "$repo" && source_files | xargs -0 sha256sum)
  sha256sum "$repo/image/build.sh" "${locks[@]}" | cut -d' ' -f1
  echo "tag $IMAGE_TAG epoch $SOURCE_DATE_EPOCH"
  umoci --version
} | digest)
archive=$(cd "$IMAGE_OUT_DIR" && pwd)/$IMAGE_NAME-$IMAGE_TAG.oci.tar
if [[ $rebuild == 0 && -f $archive && $(cat "$archive.inputs" 2>/dev/null) == "$key" ]]; then
  say "up to date: $archive"
  echo "$archive" >&3
  exit 0
fi

# ---- wheels: the locked dependencies and build tools, hash-checked, cached per lock ------------
wheels=$cache/image-build/wheels-$(cat "${locks[@]}" | digest)
if [[ ! -f $wheels/.complete ]]; then
  say "downloading wheels from the lock files"
  partial+=("$wheels.tmp")
  rm -rf "$wheels.tmp" && mkdir -p "$wheels.tmp"
  for lock in "${locks[@]}"; do
    "$PYTHON" -m pip download --quiet --no-deps --require-hashes "${WHEEL_TARGET[@]}" \
      --dest "$wheels.tmp" --requirement "$lock"
  done
  touch "$wheels.tmp/.complete"
  mv "$wheels.tmp" "$wheels"
  find "$cache/image-build" -maxdepth 1 -name 'wheels-*' ! -name "${wheels##*/}" \
    -exec rm -rf {} +
fi

# ---- app layer: /opt/venv built inside the base by the image's own Python ----------------------
if [[ ! -d $rootfs ]]; then
  mkdir "$rootfs"
  tar --extract --gzip --file="$base/blobs/${base_layer/://}" --directory="$rootfs"
fi
# The layers carry no /dev; pip needs /dev/null and compileall -j0 a /dev/shm for semaphores.
[[ -e $rootfs/dev/null ]] || mknod -m 666 "$rootfs/dev/null" c 1 3
[[ -d $rootfs/dev/shm ]] || mkdir -m 1777 "$rootfs/dev/shm"
say "building the app layer (/opt/venv)"
build=$rootfs/tmp/build # not in any layer
mkdir -p "$build/src"
cp -a "$wheels" "$build/wheels"
cp "${locks[@]}" "$build/"
(cd "$repo" && source_files | tar --create --null --files-from=- --file=-) |
  tar --extract --directory="$build/src"
pip_wheel=$(cd "$build/wheels" && echo pip-*.whl)
[[ -f $build/wheels/$pip_wheel ]] || die "no pip wheel in image/build-tools.lock"
# pip, setuptools and wheel live in a throwaway venv under /tmp; /opt/venv gets none of them.
in_root "$rootfs" -- python3 -m venv --without-pip /tmp/build/tools
in_root "$rootfs" -- /tmp/build/tools/bin/python "/tmp/build/wheels/$pip_wheel/pip" install -q \
  --no-index --find-links /tmp/build/wheels --no-deps --require-hashes \
  --requirement /tmp/build/build-tools.lock
tools_pip=(/tmp/build/tools/bin/python -m pip)
in_root "$rootfs" -- "${tools_pip[@]}" wheel -q --no-deps --no-build-isolation --no-index \
  --wheel-dir /tmp/build/dist /tmp/build/src
in_root "$rootfs" -- python3 -m venv --without-pip /opt/venv
venv_pip=("${tools_pip[@]}" --python /opt/venv/bin/python)
in_root "$rootfs" -- "${venv_pip[@]}" install -q --no-index --no-deps --no-compile \
  --require-hashes --find-links /tmp/build/wheels --requirement /tmp/build/requirements.lock
in_root "$rootfs" -- "${venv_pip[@]}" install -q --no-index --no-deps --no-compile \
  --find-links /tmp/build/dist inferenceops
in_root "$rootfs" -- "${venv_pip[@]}" check
in_root "$rootfs" -- /opt/venv/bin/python -m compileall -q -f -j0 \
  --invalidation-mode unchecked-hash /opt/venv/lib
# As the Dockerfile does: the entry point starts, as the image's user, with the image's env.
in_root "$rootfs" --userspec="$IMAGE_USER" -- "${IMAGE_ENV[@]}" \
  "${IMAGE_ENTRYPOINT[@]}" --help >/dev/null
in_root "$rootfs" -- /opt/venv/bin/python -c 'import inferenceops, kopf'
layer_tar "$rootfs" "$work/app.tar" ./opt/venv

# ---- image: base + app layer + the contract's config, then a deterministic tar of the layout ---
oci=$work/oci
cp -a "$base" "$oci"
umoci raw add-layer --image "$oci:base" --tag "$IMAGE_TAG" --history.created "$created" \
  --history.created_by "pip install inferenceops into /opt/venv (image/build.sh)" "$work/app.tar"
umoci rm --image "$oci:base"
config=(--config.user "$IMAGE_USER" --config.workingdir "$IMAGE_WORKDIR")
for v in "${IMAGE_ENTRYPOINT[@]}"; do config+=(--config.entrypoint "$v"); done
for v in "${IMAGE_CMD[@]}"; do config+=(--config.cmd "$v"); done
for v in "${IMAGE_PORTS[@]}"; do config+=(--config.exposedports "$v"); done
for v in "${IMAGE_ENV[@]}"; do config+=(--config.env "$v"); done
for v in "${IMAGE_LABELS[@]}"; do config+=(--config.label "$v"); done
umoci config --image "$oci:$IMAGE_TAG" --created "$created" --history.created "$created" \
  --history.created_by "image config (image/build.sh)" "${config[@]}"
umoci gc --layout "$oci"

tmp=$IMAGE_OUT_DIR/.$IMAGE_NAME-$IMAGE_TAG.oci.tar.$$
partial+=("$tmp")
tar --create --file="$tmp" --directory="$oci" --sort=name --format=posix \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner --mode=u=rwX,go=rX \
  oci-layout index.json blobs
mv -f "$tmp" "$archive"
echo "$key" >"$archive.inputs"

# The kubelet looks images up by their normalized name (inferenceops -> docker.io/library/...).
case $IMAGE_NAME in
  *.*/* | *:*/* | localhost/*) base_name=$IMAGE_NAME ;;
  */*) base_name=docker.io/$IMAGE_NAME ;;
  *) base_name=docker.io/library/$IMAGE_NAME ;;
esac
say "wrote $archive (ref $IMAGE_TAG); on a containerd node:"
say "  ctr -n k8s.io images import --base-name $base_name $archive"
echo "$archive" >&3
