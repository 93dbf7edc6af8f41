"""CPU per poll of bounding and redacting provider strings (providers/sanitize.py), the work
Poller.observe adds to every poll before the scheduler compares the result with the last one.

    .venv/bin/python bench/sanitize.py [--number 200000] [--repeats 5]

Steady polls (what 10,000 endpoints cost every 30 s) as each adapter builds them, with and without
a credential to redact, and a failing poll's message. Prints µs per Observation: the best of the
repeats, and the same loop with no sanitising for the baseline.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable

from inferenceops.providers import Observation, Phase, Workers
from inferenceops.providers.sanitize import (
    MESSAGE_CHARS,
    clean,
    clean_observation,
    redacting,
    redactor_for,
)

TOKEN = "flp_test-Zq8rT2vX9mK4pL7nW3sY6hJ1aB5cD0eF"  # fake
STEADY = {
    "friendli RUNNING": Observation(Phase.RUNNING, "RUNNING", workers=Workers(1, 1, 0, 2)),
    "nsModelServer READY": Observation(Phase.RUNNING, "READY", workers=Workers(1, 1)),
    "runpod, sub-phase": Observation(Phase.IDLE, "READY", "scaled to zero, 0 jobs in queue"),
    "dataArts FAILED": Observation(
        Phase.FAILED,
        "CREATE_FAILED",
        error_code="DLM.4001",
        error_message="the resource pool has insufficient APU quota for the requested replicas",
    ),
}
FAILURE = "provider failed (HTTP 503): upstream connect error or disconnect/reset before headers"


def per_call(fn: Callable[[], object], number: int, repeats: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeats)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    n, r = args.number, args.repeats
    redactor = redactor_for(TOKEN)
    baseline = per_call(lambda: STEADY["friendli RUNNING"], n, r)
    print(f"{'case':32} {'no credential':>14} {'credential':>11}   µs per Observation")
    for name, obs in STEADY.items():
        plain = per_call(lambda obs=obs: clean_observation(obs, None), n, r)
        secret = per_call(lambda obs=obs: clean_observation(obs, redactor), n, r)
        print(f"{name:32} {plain - baseline:14.2f} {secret - baseline:11.2f}")

    def batch() -> None:  # what Poller.observe adds once per account call
        with redacting(redactor_for(TOKEN)):
            pass

    print(f"{'per call: redactor_for + redacting':32} {per_call(batch, n, r):26.2f}")
    failure = per_call(lambda: clean(FAILURE, MESSAGE_CHARS, redactor), n, r)
    print(f"{'failure message (redacted)':32} {failure:26.2f}")
    huge = "x" * 1_000_000
    cut = per_call(lambda: clean(huge, MESSAGE_CHARS, redactor), 200, r)
    print(f"{'1 MB errorMessage (redacted)':32} {cut:26.2f}")


if __name__ == "__main__":
    main()
