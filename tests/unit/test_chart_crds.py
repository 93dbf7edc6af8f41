"""The Helm chart ships the repo's CRDs unchanged, and its default values pass its own schema.

No cluster and no helm binary needed: this runs in the plain unit-test suite.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "inferenceops"
REPO_CRDS = REPO / "crds"
CHART_CRDS = CHART / "crds"


def _crd_files(directory: Path) -> list[str]:
    """Names of the YAML files in ``directory`` that hold CustomResourceDefinitions.

    The repo's crds/ also has a kustomization.yaml, which must not go into the chart (Helm would
    try to create a Kustomization object from it).
    """
    if not directory.is_dir():
        return []
    names = []
    for p in sorted(directory.glob("*.yaml")):
        kinds = {d.get("kind") for d in yaml.safe_load_all(p.read_text()) if isinstance(d, dict)}
        if "CustomResourceDefinition" in kinds:
            names.append(p.name)
    return names


def test_repo_has_the_inferenceendpoint_crd() -> None:
    assert "inferenceops.io_inferenceendpoints.yaml" in _crd_files(REPO_CRDS), (
        "crds/inferenceops.io_inferenceendpoints.yaml is missing (generate it first)"
    )


def test_chart_crds_are_the_repo_crds() -> None:
    repo, chart = _crd_files(REPO_CRDS), _crd_files(CHART_CRDS)
    assert repo, f"no CRDs in {REPO_CRDS}"
    assert chart == repo, (
        f"charts/inferenceops/crds/ has {chart}, crds/ has {repo}: "
        "copy them with `cp crds/*_*.yaml charts/inferenceops/crds/`"
    )
    for name in repo:
        assert (CHART_CRDS / name).read_bytes() == (REPO_CRDS / name).read_bytes(), (
            f"charts/inferenceops/crds/{name} differs from crds/{name}: "
            "copy it with `cp crds/*_*.yaml charts/inferenceops/crds/`"
        )


def test_chart_crds_dir_holds_only_crds() -> None:
    """Helm creates every file in crds/ as-is: nothing but CRDs belongs there."""
    everything = sorted(p.name for p in CHART_CRDS.iterdir() if p.is_file())
    assert everything == _crd_files(CHART_CRDS), everything


def _schema() -> dict:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return schema


def _defaults() -> dict:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert isinstance(values, dict)
    return values


def test_default_values_validate_against_schema() -> None:
    jsonschema.Draft7Validator(_schema()).validate(_defaults())


@pytest.mark.parametrize(
    "patch",
    [
        {"logFormat": "xml"},
        {"logLevel": "verbose"},
        {"notAValue": True},
        {"image": {"repository": "x", "tagg": "1"}},
        {"metrics": {"serviceMonitor": {"enabled": True, "interval": "soon"}}},
        {"watchNamespaces": ["Not_A_Namespace"]},
        {"replicaCount": -1},
        {"leaseDuration": 1},
        {"podDisruptionBudget": {"maxUnavailable": 0}},
        {"topologySpread": {"whenUnsatisfiable": "Sometimes"}},
        {"image": {"repository": "x", "digest": "latest"}},
        {"clusterSecretNamespaces": ["Not_A_Namespace"]},
        {"admissionPolicy": {"enable": True}},
        {"networkPolicy": {"egress": {"except": ["169.254.169.254"]}}},
        {"networkPolicy": {"egress": {"providerCIDRs": ["anywhere"]}}},
        {"networkPolicy": {"egress": {"apiServerPorts": []}}},
    ],
    ids=lambda p: json.dumps(p, separators=(",", ":")),
)
def test_schema_rejects_bad_values(patch: dict) -> None:
    values = _defaults()
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(_schema()).validate(values)


def test_every_value_is_documented() -> None:
    """Each key in values.yaml has a comment on the line(s) right above it, or is a group."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith("- "):
            continue
        key, sep, rest = stripped.partition(":")
        if not sep or " " in key:
            continue
        is_group = (
            rest.strip() == ""
            and i + 1 < len(lines)
            and lines[i + 1].startswith(" " * (len(line) - len(line.lstrip()) + 2))
        )
        indent = len(line) - len(line.lstrip())
        if indent > 0 and _inside_k8s_object(lines, i):
            continue
        if is_group:
            continue
        if not lines[i - 1].strip().startswith("#"):
            undocumented.append(f"line {i + 1}: {stripped}")
    assert not undocumented, "values without a comment:\n" + "\n".join(undocumented)


_K8S_OBJECT_KEYS = {"resources", "podSecurityContext", "securityContext"}


def _inside_k8s_object(lines: list[str], i: int) -> bool:
    """True if line i is under a top-level Kubernetes-object value (documented as a whole)."""
    for j in range(i - 1, -1, -1):
        line = lines[j]
        if line and not line.startswith((" ", "#")):
            return line.split(":", 1)[0] in _K8S_OBJECT_KEYS
    return False


def _leaf_keys(values: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in _K8S_OBJECT_KEYS:
            keys += _leaf_keys(value, path + ".")
        else:
            keys.append(path)
    return keys


def test_readme_lists_every_value() -> None:
    readme = (CHART / "README.md").read_text()
    missing = [k for k in _leaf_keys(_defaults()) if f"| `{k}` |" not in readme]
    assert not missing, f"charts/inferenceops/README.md has no row for: {missing}"
