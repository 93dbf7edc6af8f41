import httpx

from inferenceops.providers import SecretKeyRef, Target
from inferenceops.providers.dataarts import PROVIDER, DataArtsFabricConfig

from ..conformance import SECRET, ConformanceCase

WORKSPACE = "ws-conformance"


def endpoint_id(i: int) -> str:
    return f"0b5633ba2b904511ad514346f4d{i:05d}"


def _target(i: int) -> Target[DataArtsFabricConfig]:
    config = DataArtsFabricConfig(
        url="https://fabric.cn-north-4.myhuaweicloud.com",
        workspace_id=WORKSPACE,
        endpoint_id=endpoint_id(i),
        credentials_secret_ref=SecretKeyRef(name="dataarts", key="token"),
    )
    return Target(key=f"ns/dataarts{i}", config=config, credential=SECRET)


def _entry(ident: str) -> dict[str, object]:
    return {
        "id": ident,
        "name": f"ep-{ident[-5:]}",
        "type": "inference",
        "status": "RUNNING",
        "reserved_resource": {"apu": {"spec_code": "a1x", "warm_up_num": 1, "max_num": 4}},
    }


def _running(request: httpx.Request) -> httpx.Response:
    # Answers both the filtered single-endpoint query and the unfiltered workspace listing of
    # endpoints 0..9, one page.
    assert request.url.path == f"/v1/workspaces/{WORKSPACE}/endpoints"
    wanted = request.url.params.get("endpoint_id")
    ids = [wanted] if wanted else [endpoint_id(i) for i in range(10)]
    return httpx.Response(200, json={"total": len(ids), "endpoints": [_entry(i) for i in ids]})


CASE = ConformanceCase(
    provider=PROVIDER, make_target=_target, running=_running, auth_header="X-Auth-Token"
)
