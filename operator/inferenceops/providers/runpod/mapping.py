"""RunPod's bodies to an `Observation`: the phase derived from the workers, the queue counts."""

from __future__ import annotations

from ..base import Observation, Phase, Queue, Workers
from .responses import Health, V1Endpoint, V2Endpoint, V2Scaling, V2Workers

__all__ = ["MAX_WORKERS_ZERO", "WORKERS_UNHEALTHY", "map_health", "map_v1", "map_v2"]

#: Error code of an endpoint whose only workers are unhealthy.
WORKERS_UNHEALTHY = "WorkersUnhealthy"
#: Error code of an endpoint whose max workers is 0: RunPod cannot start a worker for it.
MAX_WORKERS_ZERO = "MaxWorkersZero"
MAX_WORKERS_ZERO_MESSAGE = (
    "max workers is 0, so RunPod cannot start a worker (RunPod lowers it to 0 after 7 days "
    "without requests); raise max workers in the RunPod console or API to serve again"
)


#: desiredStatus values of workers RunPod is stopping: they are going away, not coming up.
_V1_GOING_AWAY = frozenset({"EXITED", "TERMINATED"})


def map_v1(body: V1Endpoint) -> Observation:
    workers = body.workers or []
    # desiredStatus is RunPod's intent for the worker, the closest v1 comes to observed health.
    ready = workers.count("RUNNING")
    total = len(workers)
    if body.workersMax == 0:
        return _max_workers_zero(
            f"workers running={ready} total={total}",
            Workers(ready=ready, total=total, min=body.workersMin, max=body.workersMax),
        )
    if ready >= 1:
        phase = Phase.RUNNING
    elif all(w in _V1_GOING_AWAY for w in workers):
        # None wanted running (or none listed): scaled down to zero, and RunPod starts workers
        # again on demand. A worker on its way up is already desiredStatus RUNNING, so v1 has
        # no Provisioning to report.
        phase = Phase.IDLE
    else:
        # A desiredStatus v1 does not document (or none): we cannot tell where it is going.
        phase = Phase.UNKNOWN
    return Observation(
        phase=phase,
        provider_status=f"workers running={ready} total={total}",
        workers=Workers(ready=ready, total=total, min=body.workersMin, max=body.workersMax),
    )


def _max_workers_zero(provider_status: str, workers: Workers) -> Observation:
    """Max workers 0 wins over any worker count: nothing can serve until the user raises it.

    Suspended, not Failed: nothing is broken and waiting will not change it (RunPod keeps it at
    0 until someone raises it), which is what Suspended means for every provider; a user who
    set 0 on purpose to pause the endpoint gets the same, truthful, answer.
    """
    return Observation(
        phase=Phase.SUSPENDED,
        provider_status=provider_status,
        error_code=MAX_WORKERS_ZERO,
        error_message=MAX_WORKERS_ZERO_MESSAGE,
        workers=workers,
    )


def _stale(
    worker: tuple[str | None, bool | None, int | None], endpoint_version: int | None
) -> bool:
    # isStale is RunPod's own verdict; a version other than the endpoint's says the same,
    # should isStale be missing or lag behind.
    _, is_stale, version = worker
    behind = None not in (version, endpoint_version) and version != endpoint_version
    return bool(is_stale) or behind


def map_v2(endpoint: V2Endpoint, workers: V2Workers) -> Observation:
    c = workers.counts()
    ready = c.running + c.idle
    total = (
        c.total
        if c.total is not None
        else c.running + c.idle + c.initializing + c.throttled + c.unhealthy
    )
    scaling = endpoint.workers or V2Scaling()
    provider_status = (
        f"running={c.running} idle={c.idle} initializing={c.initializing} "
        f"throttled={c.throttled} unhealthy={c.unhealthy}"
    )
    counts = Workers(ready=ready, total=total, min=scaling.min, max=scaling.max)
    if scaling.max == 0:
        return _max_workers_zero(provider_status, counts)
    error_code = error_message = None
    if ready >= 1:
        phase = Phase.DEGRADED if c.unhealthy >= 1 else Phase.RUNNING
    elif total == 0:
        phase = Phase.IDLE
    elif c.initializing + c.throttled >= 1:
        # Workers still coming up win over unhealthy ones: the endpoint may yet serve.
        phase = Phase.PROVISIONING
    elif c.unhealthy >= 1:
        phase = Phase.FAILED
        error_code = WORKERS_UNHEALTHY
        error_message = f"all {c.unhealthy} worker(s) are unhealthy"
    else:
        # `total` counts workers in a state the summary has no column for.
        phase = Phase.UNKNOWN
    listed = workers.workers or []
    stale = sum(1 for w in listed if _stale(w, workers.endpointVersion))
    rollout = progress = None
    if stale and phase in _ROLLING_PHASES:
        # Workers on an older endpoint configuration: RunPod is rolling an update out.
        phase = Phase.UPDATING
        updated = len(listed) - stale
        version = f" on version {workers.endpointVersion}" if workers.endpointVersion else ""
        rollout = f"rolling update: {updated}/{len(listed)} workers{version}"
        progress = 100 * updated // len(listed)
    return Observation(
        phase=phase,
        provider_status=provider_status,
        provider_phase=rollout,
        error_code=error_code,
        error_message=error_message,
        progress=progress,
        workers=counts,
    )


def map_health(body: Health) -> Queue:
    jobs = body.jobs
    return Queue(in_queue=jobs.inQueue, in_progress=jobs.inProgress, failed=jobs.failed)


#: Phases a rollout turns into Updating. Failed (nothing but unhealthy workers) stays Failed: a
#: rollout whose workers all fail has failed, and saying so matters more than the progress.
_ROLLING_PHASES = frozenset({Phase.RUNNING, Phase.DEGRADED, Phase.PROVISIONING})
