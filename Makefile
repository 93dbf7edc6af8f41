# inferenceops — every set-up step lives here so a fresh machine needs only `make run` / `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The Kubernetes version the local control plane is built at (tests/controlplane/go.mod pins
# the same; change both with tests/controlplane/build.sh --regen-gomod).
K8S_VERSION ?= v1.37.2
export K8S_VERSION

.PHONY: help venv run demo emulator test test-unit test-integration lint crds dashboards controlplane bench image e2e e2e-kind e2e-kind-clean clean

help:
	@echo "make run         the operator against the current kube context; without one, a local cluster + emulator + operator until Ctrl-C"
	@echo "make test        unit + integration tests (builds the local control plane on first use)"
	@echo "make test-unit   the fast loop: unit tests only"
	@echo "make demo        local control plane + emulator + operator + examples, for a minute"
	@echo "make lint        ruff check + ruff format --check + mypy --strict (operator and emulator)"
	@echo "make emulator    the provider emulator on 127.0.0.1:8400, seeded for examples/emulator (inferenceops-emulator --help)"
	@echo "make crds        regenerate crds/ (and the admission policies) and the chart's copies from the models"
	@echo "make dashboards  regenerate the chart's Grafana dashboard JSON (tools/dashboard.py)"
	@echo "make bench       the scale benchmark (bench/)"
	@echo "make image       the operator image as an OCI archive, no Docker needed (root; image/README.md)"
	@echo "make e2e         a real node here (kubelet + containerd, root) + image + chart: the e2e suite (docs/e2e.md)"
	@echo "make e2e-kind    the same image and chart on a kind cluster (needs Docker; docs/e2e.md)"

# The provider emulator (emulator/) is a separate package: installed here for tests, the
# benchmark and the demo, never part of the operator's wheel or image.
$(PY): pyproject.toml emulator/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' -e ./emulator
	@touch $(PY)

venv: $(PY)

# With a kube context: the CRDs applied and the operator running here, against that cluster.
# Without one: a local control plane, the emulator and the operator, kept until Ctrl-C.
# Both with --allow-insecure-http: `make run` is for trying the operator against the emulator,
# which serves plain http on 127.0.0.1 and whose examples carry (fake) tokens; a deployed
# operator runs without it and refuses to send a credential over plain http (InsecureURL).
run: venv
	@if $(PY) -c 'import sys, kubernetes.config as c; sys.exit(0 if c.list_kube_config_contexts()[1] else 1)' >/dev/null 2>&1; then \
		kubectl=$$(bash tests/controlplane/kubectl.sh) && \
		$$kubectl apply -k crds/ && \
		echo && echo "CRDs applied to $$($$kubectl config current-context); the operator runs here until Ctrl-C." && \
		echo "To try the examples without provider accounts, in other terminals:" && \
		echo "  make emulator                               # the providers' APIs on 127.0.0.1:8400" && \
		echo "  $$kubectl apply -k examples/emulator" && \
		echo "  $$kubectl get ie -w" && echo && \
		$(VENV)/bin/inferenceops run --allow-insecure-http; \
	else \
		echo "No kube context: starting a local control plane, the provider emulator and the operator."; \
		$(PY) examples/demo/demo.py --keep; \
	fi

demo: venv
	$(PY) examples/demo/demo.py

emulator: venv
	$(VENV)/bin/inferenceops-emulator --seed examples/emulator/seed.yaml

controlplane:
	bash tests/controlplane/build.sh

test: venv
	$(PY) -m pytest -q -m "not e2e"

test-unit: venv
	$(PY) -m pytest -q -m "not integration and not e2e"

test-integration: venv
	$(PY) -m pytest -q -m integration

lint: venv
	$(VENV)/bin/ruff check operator emulator tests examples image $(wildcard bench) tools
	$(VENV)/bin/ruff format --check operator emulator tests examples image $(wildcard bench) tools
	$(VENV)/bin/mypy

crds: venv
	$(VENV)/bin/inferenceops crd > crds/inferenceops.io_inferenceendpoints.yaml
	$(VENV)/bin/inferenceops crd --kind InferenceProvider > crds/inferenceops.io_inferenceproviders.yaml
	$(VENV)/bin/inferenceops crd --kind ClusterInferenceProvider > crds/inferenceops.io_clusterinferenceproviders.yaml
	cp crds/inferenceops.io_*.yaml charts/inferenceops/crds/
	$(VENV)/bin/inferenceops admission-policy > crds/secret-access-policy.yaml
	$(VENV)/bin/inferenceops admission-policy --helm-template > charts/inferenceops/templates/secret-access-policy.yaml

dashboards: venv
	$(PY) tools/dashboard.py

bench: venv
	$(PY) bench/run.py --replicas 1,3

# The operator image as an OCI archive, built without a Docker engine (as root; image/README.md).
# The last line of output is the archive's path. With Docker instead: docker build -t $(IMAGE) .
APP_VERSION := $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' charts/inferenceops/Chart.yaml)
IMAGE ?= inferenceops:$(APP_VERSION)

image: venv
	bash image/build.sh

# ---- end to end on a real node (root; docs/e2e.md) ---------------------------------------------
# Debian packages, the node's binaries (built from Go modules like the control plane), then the
# suite: the node starts and stops inside the tests and leaves the machine as it found it.
e2e: venv
	bash tests/node/install.sh
	bash tests/controlplane/build.sh --node
	$(PY) -m pytest -q -m e2e tests/node tests/e2e

# ---- the same image and chart on kind (needs a Docker engine; docs/e2e.md) ----------------------
KIND_CLUSTER ?= inferenceops-e2e

e2e-kind: venv
	@docker info >/dev/null 2>&1 || { echo "make e2e-kind needs a running Docker engine (docs/e2e.md); use make e2e without one"; exit 1; }
	kind get clusters | grep -qx '$(KIND_CLUSTER)' || kind create cluster --name $(KIND_CLUSTER) --config tests/e2e/kind-config.yaml --wait 120s
	kind export kubeconfig --name $(KIND_CLUSTER)
	INFERENCEOPS_E2E_KIND=$(KIND_CLUSTER) $(PY) -m pytest -q -m e2e tests/e2e

e2e-kind-clean:
	kind delete cluster --name $(KIND_CLUSTER)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
