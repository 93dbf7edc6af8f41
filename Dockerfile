# Container image of the inferenceops operator.
#
#   docker build -t inferenceops:0.1.0 .
#   docker run --rm inferenceops:0.1.0 --help
#
# Both stages use the same base image: the venv built in the first stage links to the base
# image's /usr/local/bin/python3.11, so the runtime stage must have the same Python at the same
# path.
#
# Reproducible builds: pin the base image by digest, e.g.
#   docker buildx imagetools inspect python:3.11-slim-bookworm   # prints "Digest: sha256:..."
#   docker build --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest> .
# or replace the default below with the tag@digest form (Dependabot/Renovate can keep it fresh).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: build the project wheel and install it with its dependencies into a venv ------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src

# The venv gets no pip/setuptools of its own: the builder's pip installs into it (--python),
# so the runtime image carries no packaging tools in the venv.
RUN python -m venv --without-pip /opt/venv

# Only what the wheel is built from (see .dockerignore). README.md* tolerates a missing README.
COPY pyproject.toml README.md* ./
COPY operator/ ./operator/
# The same hash-locked requirements as `make image` (image/build.sh): every package and build
# tool pinned by version and sha256, so both recipes install the same bytes. The locks are for
# CPython 3.11 on x86_64 (manylinux); `bash image/build.sh --lock` regenerates them.
COPY image/requirements.lock image/build-tools.lock ./image/

# Build tools from their lock, the project wheel built with them (no isolated build env, which
# would fetch unpinned setuptools), the dependencies from the lock with --require-hashes, then
# the wheel alone (--no-deps: nothing resolved outside the lock), and `pip check` that the
# lock satisfies the wheel's requirements. Binary wheels only: the slim image has no compiler.
RUN pip install --no-deps --require-hashes --only-binary=:all: --requirement image/build-tools.lock \
 && pip wheel --no-deps --no-build-isolation --no-index --wheel-dir /wheels . \
 && pip --python /opt/venv/bin/python install --no-deps --require-hashes --only-binary=:all: \
      --requirement image/requirements.lock \
 && pip --python /opt/venv/bin/python install --no-deps --no-index /wheels/inferenceops-*.whl \
 && pip --python /opt/venv/bin/python check \
 && /opt/venv/bin/python -c "import inferenceops, kopf" \
 && test -x /opt/venv/bin/inferenceops

# ---- runtime ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="inferenceops" \
      org.opencontainers.image.description="Kubernetes operator reporting the live status of remote model-inference endpoints" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# Non-root user 65532 (the distroless "nonroot" uid; the Helm chart runs as it too). The base
# image's own packaging tools (pip, setuptools, wheel) are removed: nothing installs at run time.
RUN groupadd --system --gid 65532 nonroot \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin nonroot \
 && python -m pip uninstall --yes pip setuptools wheel

COPY --from=builder /opt/venv /opt/venv

USER 65532:65532
WORKDIR /

# 8081: /healthz (liveness/readiness); 9090: /metrics (Prometheus).
EXPOSE 8081 9090

ENTRYPOINT ["inferenceops"]
CMD ["run"]
