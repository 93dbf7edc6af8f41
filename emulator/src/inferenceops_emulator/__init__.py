"""Local emulator of the providers' status APIs, for tests, benchmarks and demos. A dev tool:
it is not in the operator's wheel or image, and the operator never imports it.

One aiohttp server on 127.0.0.1 serves every provider in `registry.EMULATIONS` (keyed by the
name of the provider's block in the spec) under its own prefix; what a user puts in an
InferenceEndpoint's `url` is the base on the left, the operator appends the rest:

    {base}/friendli           GET /dedicated/beta/endpoint[/{id}[/status]]      Bearer token
    {base}/runpod/v2          GET /serverless[/{id}[/workers]]                  Bearer token
    {base}/runpod/v1          GET /endpoints[/{id}]?includeWorkers=true         Bearer token
    {base}/takeoff/{inst}     GET /status                                       no auth
    {base}/ns/{inst}          GET /status                                       no auth
    {base}/dataarts           GET /v1/workspaces/{ws}/endpoints[/{id}]          X-Auth-Token
                                                                                or AK/SK signed

Each provider module's docstring lists the assumptions made where its docs are silent; its
`EMULATION` declares its routes, auth check, error format and key shape. A new provider is one
module plus one line in `registry.py`.

Python API (`async with Emulator(token="emulator-token") as emu:`; port 0 picks a free port).
`provider` is always the spec's name: friendli, runpod, takeoff, nsModelServer, dataArtsFabric.

    emu.base_url, emu.control_url, emu.url("friendli" | "runpod_v1" | "runpod_v2" |
    "dataArtsFabric"), emu.url("takeoff" | "nsModelServer", instance=inst)

    emu.store("friendli").put(id, status=, phase=, error_code=, team=, name=, project=,
                     curr_replicas=, desired_replicas=, updated_replicas=, autoscaling_min=,
                     autoscaling_max=)
    emu.store("runpod").put(id, workers=["RUNNING", {"status": "IDLE", "desired_status":
                   "EXITED"}], workers_min=, workers_max=, name=, idle_timeout=, version=, ...)
    emu.store("takeoff").put(inst, live=["model-a", {"model_name": "b", "consumer_groups":
                    ["g"]}], loading=[...], dead=[...], null_status=False, unavailable=False,
                    reserved_consumers=["primary"], config={...})
    emu.store("nsModelServer").put(inst, stage="LOADING_MODEL", progress=40, messages=[...],
                    errors=[...])
    emu.store("dataArtsFabric").put(ws, id, status="RUNNING", type="inference", name=,
                     warm_up_num=1, max_num=3, spec_code=, model_id=, visibility=, description=,
                     error_code=, error_msg=, worker_groups=, public_access=)
    put() creates or replaces (unset fields take defaults); patch(*key, **fields) changes only
    the given fields; delete(*key) -> bool; get(*key); ids(*group). DataArts keys start with
    the workspace: create_group(ws), delete(ws) and ids() (the workspaces) work on workspaces.

    emu.set_token(provider | None, token, expires_in=None)
                                                   rotate credentials (None: every provider);
                                                   expires_in: refuse it after that many s
    emu.set_access_key(provider, ak, sk)           accept SDK-HMAC-SHA256 signed requests
                                                   (dataArtsFabric; X-Sdk-Date within 15 min)
    emu.fail(provider, status, endpoint=, times=, retry_after=, body=, after=) -> fault id
    emu.slow(provider, seconds, endpoint=, times=)
    emu.garbage(provider, "html" | "truncated" | "wrong_types", endpoint=, times=, status=)
    emu.huge(provider, size=20 MiB, endpoint=, times=)
    emu.add_fault(provider, kind, ...), emu.list_faults(), emu.remove_fault(id),
    emu.clear_faults(provider=None, endpoint=None)
    emu.lifecycle(provider, key, [(0, {...}), (3, {"status": "RUNNING"}), (9, None)]) -> id
                  key: an id, or (ws, id) for DataArts; offsets in seconds from now; None deletes
    emu.wait_lifecycle(id), emu.cancel_lifecycle(id), emu.cancel_lifecycles()
    emu.requests(provider=None, endpoint=None, path=None) -> int, emu.request_summary(),
    emu.reset_requests(), emu.changed_at(provider, key) -> time.time() of last change
    emu.bulk(provider, count, prefix=, group=(ws,), **fields), emu.seed(doc),
    emu.load_seed(path), emu.reset()

Faults: `endpoint` limits a fault to requests about that endpoint id / instance (for DataArts
also a workspace id, or the list call's `endpoint_id` filter); `times` limits it to the next N
matching requests (default: until cleared); `after` lets the first N matching requests through
(a listing that fails on its second page). Slow faults add up; of each other kind the oldest
matching fault applies. A status fault answers in the provider's error format before auth is
checked (as a gateway would); `garbage` rewrites whatever would have been sent ("html": a 200
nginx page, "truncated": the first half of the JSON, "wrong_types": same keys, wrong value
types); `huge` pads the reply past `size` bytes, keeping it valid JSON.

Request accounting counts every provider request, faulted or rejected, by provider, by
endpoint id / instance / workspace, and by exact path; control calls are not counted.

Control API (JSON bodies; errors are `{"error": ...}` with 400/404/405), under {base}/_emulator:
the table in `control.py` (each operation's method, paths, parameters and answer) is the one
list of it; the server's routes, `client.EmulatorClient`'s methods and the `Emulator` methods
above take their names from it (GET /requests/summary is `request_summary()` everywhere).
`process.emulator_process` runs the emulator as a subprocess. Where a provider's key has
leading parts (DataArts: `workspace`), bodies name them.

Seed document (YAML or JSON file for serve_forever / load_seed, or POST /seed); every value
is the keyword arguments of the matching put(), null meaning all defaults:

    friendli:       {ep-1: {status: INITIALIZING, phase: DOWNLOADING_MODEL, team: team-a}}
    runpod:         {rp-1: {workers: [RUNNING, IDLE], workers_max: 3}}
    takeoff:        {tk-1: {live: [llama-3-8b]}}
    nsModelServer:  {ns-1: {stage: LOADING_MODEL, progress: 40}}
    dataArtsFabric: {ws-1: {ep-a: {status: RUNNING, warm_up_num: 1, max_num: 3}, ep-b: null}}
    bulk:           [{provider: dataArtsFabric, workspace: ws-bench, count: 10000,
                      prefix: bench-, fields: {status: RUNNING}}]
    faults:         [{provider: runpod, kind: status, status: 429, times: 2}]
"""

from .client import EmulatorClient, EmulatorError
from .server import DEFAULT_PORT, Emulator, serve_forever

__all__ = ["DEFAULT_PORT", "Emulator", "EmulatorClient", "EmulatorError", "serve_forever"]
