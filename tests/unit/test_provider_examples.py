"""examples/provider-accounts/: one per provider, each resolving to a spec the operator polls."""

from __future__ import annotations

from pathlib import Path

import yaml

from inferenceops.api import parse_spec
from inferenceops.provider_objects import ProviderObjects
from inferenceops.providers import all_providers

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "provider-accounts"


def test_one_example_per_provider_and_every_endpoint_resolves() -> None:
    covered = set()
    for path in sorted(EXAMPLES.glob("*.yaml")):
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
        store = ProviderObjects()
        # The namespace a tenant would have, labelled as the runpod example's condition asks.
        store.observe_namespace(
            None, {"metadata": {"name": "ml", "labels": {"inference": "runpod"}}}
        )
        for doc in documents:
            doc["metadata"].setdefault("namespace", "ml")
            if doc["kind"] == "InferenceProvider":
                store.observe_namespaced(None, doc)
            elif doc["kind"] == "ClusterInferenceProvider":
                del doc["metadata"]["namespace"]
                store.observe_cluster(None, doc)
        endpoints = [d for d in documents if d["kind"] == "InferenceEndpoint"]
        assert endpoints, path.name
        for doc in endpoints:
            parsed = parse_spec(store.resolve("ml", doc["spec"]).spec)
            covered.add(parsed.provider.name)
    assert covered == {p.name for p in all_providers()}
