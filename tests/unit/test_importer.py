"""`inferenceops import` (issue 25): names, collisions, selectors, skipping what is declared,
paging errors, credentials; HTTP faked with MockTransport, the cluster with a fake."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from inferenceops.accounts import AccountPool, AccountSettings
from inferenceops.cli import _parser
from inferenceops.importer import (
    ID_ANNOTATION,
    NAME_ANNOTATION,
    dns_label,
    import_endpoints,
    manifest_names,
)
from inferenceops.providers import RemoteEndpoint

SECRET = "flp_test-import-credential-0123456789"
URL = "https://friendli.example"
RUNPOD_URL = "https://runpod.example/v2"


class FakeCluster:
    def __init__(
        self,
        endpoints: list[Mapping[str, Any]] | None = None,
        objects: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self._endpoints = endpoints or []
        self._objects = objects or {}
        self.secret_reads: list[tuple[str, str, str]] = []

    def provider_object(self, kind: str, namespace: str, name: str) -> Mapping[str, Any]:
        return self._objects[f"{kind}/{namespace}/{name}"]

    def secret_value(self, namespace: str, name: str, key: str) -> str:
        self.secret_reads.append((namespace, name, key))
        return SECRET

    def endpoints(self, namespace: str) -> list[Mapping[str, Any]]:
        return [e for e in self._endpoints if e["metadata"]["namespace"] == namespace]


def friendli_pages(ids: list[str], fail_page: int | None = None, status: int = 500) -> Any:
    """A Friendli list of `ids`, 100 a page; page number `fail_page` answers `status`."""

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == f"Bearer {SECRET}"
        offset = int(request.url.params.get("cursor") or 0)
        if fail_page is not None and offset // 100 == fail_page:
            headers = {"Retry-After": "9"} if status == 429 else {}
            return httpx.Response(status, json={"detail": "nope"}, headers=headers)
        page = ids[offset : offset + 100]
        more = offset + 100 < len(ids)
        data = {i: {"status": "RUNNING", "createdAt": "2026-01-01T00:00:00Z"} for i in page}
        return httpx.Response(
            200, json={"data": data, "nextCursor": str(offset + 100) if more else None}
        )

    return handler


def runpod_list(entries: list[tuple[str, str]]) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v2/serverless"
        return httpx.Response(200, json={"endpoints": [{"id": i, "name": n} for i, n in entries]})

    return handler


def _file(tmp_path: Path, document: Mapping[str, Any]) -> str:
    path = tmp_path / "account.yaml"
    path.write_text(yaml.safe_dump(dict(document)))
    return str(path)


def friendli_provider(name: str = "acme") -> dict[str, Any]:
    return {
        "apiVersion": "inferenceops.io/v1alpha1",
        "kind": "InferenceProvider",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": {
            "friendli": {"url": URL, "credentialsSecretRef": {"name": "creds", "key": "token"}},
            "inventory": {"interval": "10m"},
        },
    }


async def run(
    argv: list[str],
    handler: Callable[[httpx.Request], httpx.Response],
    cluster: FakeCluster | None = None,
) -> int:
    args = _parser().parse_args(["import", *argv])
    fake = cluster or FakeCluster()

    def pool(settings: AccountSettings) -> AccountPool:
        return AccountPool(settings, transport=httpx.MockTransport(handler))

    return await import_endpoints(args, cluster=lambda: fake, pool=pool)


def _docs(out: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(out) if d]


# --- names -------------------------------------------------------------------------------


def test_names_are_dns_1123_labels() -> None:
    assert dns_label("Llama 3 (prod)") == "llama-3-prod"
    assert dns_label("__A__b__") == "a-b"
    assert dns_label("x" * 200) == "x" * 56
    assert dns_label("日本") == ""


def test_collisions_get_a_stable_suffix_and_taken_names_are_avoided() -> None:
    remotes = [
        RemoteEndpoint("id-2", "Chat Bot", {}),
        RemoteEndpoint("id-1", "chat-bot", {}),
        RemoteEndpoint("id-3", "taken", {}),
        RemoteEndpoint("id-4", "日本", {}),
    ]
    names = manifest_names(remotes, taken={"taken"})
    assert len(set(names.values())) == 4
    assert names["id-2"] == "chat-bot"  # "Chat Bot" sorts before "chat-bot"
    assert names["id-1"].startswith("chat-bot-") and len(names["id-1"]) == len("chat-bot-") + 6
    assert names["id-3"].startswith("taken-")
    assert names["id-4"] == "id-4"
    # The same listing in another order gives the same names (a re-import diffs cleanly).
    assert manifest_names(list(reversed(remotes)), taken={"taken"}) == names


# --- the command -------------------------------------------------------------------------


async def test_a_paged_account_becomes_one_manifest_per_endpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERENCEOPS_TOKEN", SECRET)
    ids = [f"ep-{n:03d}" for n in range(250)]
    code = await run(
        ["-f", _file(tmp_path, friendli_provider()), "-n", "team-a"], friendli_pages(ids)
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    docs = _docs(out)
    assert len(docs) == 250
    first = docs[0]
    assert first["kind"] == "InferenceEndpoint"
    assert first["metadata"]["namespace"] == "team-a"
    assert first["spec"] == {
        "providerRef": {"kind": "InferenceProvider", "name": "acme"},
        "friendli": {"endpointId": first["metadata"]["annotations"][ID_ANNOTATION]},
    }
    assert "listed 250 endpoints (3 pages)" in err
    assert SECRET not in out + err


async def test_declared_endpoints_are_skipped_unless_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERENCEOPS_TOKEN", SECRET)
    ids = [f"ep-{n}" for n in range(5)]
    declared = {
        "metadata": {"name": "ep-1", "namespace": "team-a"},
        "spec": {"providerRef": {"name": "acme"}, "friendli": {"endpointId": "ep-1"}},
    }
    elsewhere = {
        "metadata": {"name": "x", "namespace": "team-b"},
        "spec": {"friendli": {"endpointId": "ep-2"}},
    }
    cluster = FakeCluster([declared, elsewhere])
    path = _file(tmp_path, friendli_provider())
    assert await run(["-f", path, "-n", "team-a"], friendli_pages(ids), cluster) == 0
    names = [d["metadata"]["name"] for d in _docs(capsys.readouterr().out)]
    assert names == ["ep-0", "ep-2", "ep-3", "ep-4"]
    assert await run(["-f", path, "-n", "team-a", "--all"], friendli_pages(ids), cluster) == 0
    assert len(_docs(capsys.readouterr().out)) == 5


async def test_selector_matches_provider_side_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERENCEOPS_TOKEN", SECRET)
    entries = [("a1", "prod-chat"), ("a2", "dev-chat"), ("a3", "prod-embed"), ("a4", "Prod x")]
    template = {
        "kind": "InferenceEndpoint",
        "metadata": {"name": "t"},
        "spec": {
            "runpod": {
                "endpointId": "ignored",
                "url": RUNPOD_URL,
                "credentialsSecretRef": {"name": "rp", "key": "key"},
            }
        },
    }
    code = await run(
        ["-f", _file(tmp_path, template), "--selector", "prod-*", "-o", "json"],
        runpod_list(entries),
    )
    out = capsys.readouterr().out
    assert code == 0
    listing = json.loads(out)
    assert listing["kind"] == "List"
    items = listing["items"]
    assert [i["metadata"]["annotations"][NAME_ANNOTATION] for i in items] == [
        "prod-chat",
        "prod-embed",
    ]
    # Without a providerRef the account block is repeated in each manifest, the template's
    # endpoint fields are not.
    assert items[0]["spec"]["runpod"] == {
        "endpointId": "a1",
        "url": RUNPOD_URL,
        "credentialsSecretRef": {"name": "rp", "key": "key"},
    }


@pytest.mark.parametrize(
    ("fail_page", "status", "reason"),
    [
        (1, 500, "Unreachable"),
        (2, 429, "RateLimited"),
        (0, 401, "Unauthorized"),
        (1, 401, "Unauthorized"),
    ],
)
async def test_a_listing_failing_midway_prints_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    fail_page: int,
    status: int,
    reason: str,
) -> None:
    monkeypatch.setenv("INFERENCEOPS_TOKEN", SECRET)
    ids = [f"ep-{n:03d}" for n in range(250)]
    path = _file(tmp_path, friendli_provider())
    code = await run(["-f", path], friendli_pages(ids, fail_page, status))
    out, err = capsys.readouterr()
    assert code == 3
    assert out == ""
    assert f"listing failed after {fail_page * 100} endpoints: {reason}" in err
    assert "nothing printed" in err
    assert SECRET not in err


async def test_partial_prints_what_was_listed_and_still_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERENCEOPS_TOKEN", SECRET)
    ids = [f"ep-{n:03d}" for n in range(250)]
    path = _file(tmp_path, friendli_provider())
    code = await run(["-f", path, "--partial"], friendli_pages(ids, 2, 500))
    out, err = capsys.readouterr()
    assert code == 3
    assert len(_docs(out)) == 200
    assert "listing failed after 200 endpoints" in err


async def test_provider_ref_reads_the_object_and_its_secret_through_the_cluster(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INFERENCEOPS_TOKEN", raising=False)
    cluster = FakeCluster(objects={"InferenceProvider/team-a/acme": friendli_provider()})
    code = await run(["--provider-ref", "acme", "-n", "team-a"], friendli_pages(["ep-1"]), cluster)
    out = capsys.readouterr().out
    assert code == 0
    assert cluster.secret_reads == [("team-a", "creds", "token")]
    (doc,) = _docs(out)
    assert doc["spec"]["providerRef"] == {"kind": "InferenceProvider", "name": "acme"}


async def test_a_missing_credential_and_an_unlisting_provider_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INFERENCEOPS_TOKEN", raising=False)

    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request may be made")

    assert await run(["-f", _file(tmp_path, friendli_provider())], never) == 2
    assert "needs a credential: set INFERENCEOPS_TOKEN" in capsys.readouterr().err
    ns = {"kind": "InferenceEndpoint", "spec": {"nsModelServer": {"url": "http://ns:8080"}}}
    assert await run(["-f", _file(tmp_path, ns)], never) == 2
    assert "one endpoint" in capsys.readouterr().err


async def test_a_credential_is_not_sent_over_plain_http(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERENCEOPS_TOKEN", SECRET)
    doc = friendli_provider()
    doc["spec"]["friendli"]["url"] = "http://friendli.example"

    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request may be made")

    assert await run(["-f", _file(tmp_path, doc)], never) == 2
    assert "InsecureURL" in capsys.readouterr().err


async def test_hostile_names_become_one_masked_line_and_ids_carrying_the_credential_are_dropped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERENCEOPS_TOKEN", SECRET)
    entries = [("a1", f"chat\n\x1b[31m{SECRET}" + "x" * 400), (f"x{SECRET[4:]}", "leak")]
    template = {
        "kind": "InferenceEndpoint",
        "spec": {
            "runpod": {
                "endpointId": "ignored",
                "url": RUNPOD_URL,
                "credentialsSecretRef": {"name": "rp", "key": "key"},
            }
        },
    }
    assert await run(["-f", _file(tmp_path, template)], runpod_list(entries)) == 0
    out, err = capsys.readouterr()
    (doc,) = _docs(out)
    shown = doc["metadata"]["annotations"][NAME_ANNOTATION]
    assert shown.isprintable() and len(shown) <= 253
    assert SECRET not in out + err and SECRET[4:] not in out
    assert doc["metadata"]["name"].startswith("chat-")


async def test_provider_ref_without_a_kube_context_says_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    args = _parser().parse_args(["import", "--provider-ref", "acme", "-n", "ml"])
    assert await import_endpoints(args) == 2
    err = capsys.readouterr().err
    assert "inferenceops: no kube context:" in err
    assert "Traceback" not in err


async def test_a_listing_of_more_than_10000_endpoints_is_not_followed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERENCEOPS_TOKEN", SECRET)
    entries = [(f"r{n}", f"n{n}") for n in range(10_001)]
    template = {
        "kind": "InferenceEndpoint",
        "spec": {"runpod": {"url": RUNPOD_URL, "credentialsSecretRef": {"name": "r", "key": "k"}}},
    }
    assert await run(["-f", _file(tmp_path, template)], runpod_list(entries)) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert "holds more than 10000 endpoints" in err
