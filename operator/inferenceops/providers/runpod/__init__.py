"""RunPod Serverless endpoints, over REST v2 (default) or the deprecated REST v1.

Specs: shared/providers/runpod-get-endpoint.md (v1) and NOTES.md (v2). RunPod has no endpoint
status word: the phase is derived from the endpoint's workers, and `providerStatus` summarises
the counts it was derived from.

- v2: `GET {url}/serverless/{id}` (min/max) and `GET {url}/serverless/{id}/workers` (summary).
  Both must answer: without the summary there is nothing to derive a phase from.
- v1: `GET {url}/endpoints/{id}?includeWorkers=true`.
- Opt-in (`queueMetrics`, v2): `GET {queueUrl}/{id}/health` for the job queue. It is RunPod's
  serverless endpoint API on another host (api.runpod.ai), not REST v2 (api.runpod.io).

Two or more endpoints in one account are answered from the list calls (`GET {url}/serverless`,
`GET {url}/endpoints?includeWorkers=true`), with per-endpoint calls for whatever the list misses.
See docs/providers/runpod.md for the mapping and the request counts.

By job: `config` (the spec block), `responses` (the bodies, as the mapping reads them), `mapping`
(bodies to an `Observation`), `listing` (the requests: list, then fetch what it missed) and
`adapter` (the `Provider`).
"""

from .adapter import PROVIDER, RunPodProvider
from .config import RunPodConfig
from .mapping import map_health, map_v1, map_v2

__all__ = ["PROVIDER", "RunPodConfig", "RunPodProvider", "map_health", "map_v1", "map_v2"]
