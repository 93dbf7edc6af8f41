"""The `inferenceops` command: run the operator, probe one endpoint, print the CRD."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import NoReturn

from .accounts import AccountSettings
from .api import InvalidSpecError, parse_duration
from .egress import parse_cidr
from .timing import PollPolicy

__all__ = ["EXIT_OK", "EXIT_PROVIDER", "EXIT_STOPPED", "EXIT_USAGE", "main"]

EXIT_OK = 0
#: `run`: a part of the running operator (the scheduler, a watch) ended unexpectedly.
EXIT_STOPPED = 1
#: Bad command line, unreadable file, invalid manifest, missing INFERENCEOPS_TOKEN.
EXIT_USAGE = 2
#: The provider did not answer, or answered something we could not understand.
EXIT_PROVIDER = 3

TOKEN_ENV = "INFERENCEOPS_TOKEN"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _allow_insecure_http(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="send credentials to plain http:// URLs too (a local emulator, tests); without "
        "it such an endpoint is refused with reason InsecureURL and no request is made",
    )


def _add_transport_flags(parser: argparse.ArgumentParser) -> None:
    """Flags `run` and `probe` share: a probe must see what the operator would."""
    parser.add_argument(
        "--request-deadline",
        default="15s",
        help="the longest a provider request may take, from connecting to its last body byte "
        "(a duration, default 15s); past it the poll fails with Timeout",
    )
    parser.add_argument(
        "--deny-cidr",
        action="append",
        default=[],
        metavar="CIDR",
        help="refuse provider connections to addresses in this range too (repeatable), e.g. "
        "10.0.0.0/8; link-local (169.254.0.0/16, fe80::/10) is always refused",
    )


def _with_transport_flags(args: argparse.Namespace, base: AccountSettings) -> AccountSettings:
    """`base` with --request-deadline and --deny-cidr; ValueError says which flag is wrong."""
    try:
        deadline = parse_duration(args.request_deadline)
    except InvalidSpecError:
        deadline = 0.0
    if deadline <= 0:
        raise ValueError(
            f"--request-deadline {args.request_deadline!r} is not a duration like 15s or 1m"
        )
    try:
        denied = tuple(parse_cidr(text) for text in args.deny_cidr)
    except ValueError as err:
        raise ValueError(f"--deny-cidr {err}") from None
    return dataclasses.replace(base, request_deadline=deadline, denied_networks=denied)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="inferenceops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run the operator")
    run.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); default: all namespaces",
    )
    run.add_argument(
        "--cluster-secret-namespace",
        action="append",
        default=[],
        metavar="NAMESPACE",
        help="a namespace where ClusterInferenceProviders may read Secrets (their "
        "spec.secretNamespace; repeatable); any other makes them Stalled "
        "(SecretNamespaceNotAllowed) and nothing is read. Default: the namespace the operator "
        "runs in: its pod's (the service-account namespace file), else the kubeconfig "
        "context's, else default. With --namespace, Secrets are also watched there (the "
        "operator needs get/list/watch on them; the chart grants it)",
    )
    run.add_argument("--log-format", choices=("text", "json"), default="text")
    run.add_argument("--log-level", choices=("debug", "info", "warning"), default="info")
    run.add_argument(
        "--health-port",
        type=int,
        default=8081,
        help="liveness endpoint port (GET /healthz); 0 disables it",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=9090,
        help="Prometheus metrics port (GET /metrics); 0 disables it",
    )
    _allow_insecure_http(run)
    run.add_argument(
        "--group",
        default="inferenceops",
        help="copies started with the same group (and arguments) share the endpoints between "
        "them through Leases (default inferenceops; the chart passes its fullname)",
    )
    run.add_argument(
        "--member-id",
        default=None,
        help="this copy's id in its group (default: env POD_NAME, else <hostname>-<pid>)",
    )
    run.add_argument(
        "--lease-namespace",
        default=None,
        help="where this copy's Lease is held (default: env POD_NAMESPACE, else the pod's "
        "service-account namespace, else the kubeconfig context's, else default)",
    )
    run.add_argument(
        "--lease-duration",
        type=int,
        default=15,
        metavar="SECONDS",
        help="a copy that has not renewed its Lease for this long is taken for gone and its "
        "endpoints are taken over (default 15; renewed every third of it)",
    )
    run.add_argument(
        "--requests-per-second",
        type=float,
        default=AccountSettings().requests_per_second,
        help="request budget per provider account (token bucket; burst = 2 s); replicas of one "
        "--group divide it by their share of the account's endpoints",
    )
    _add_transport_flags(run)
    run.add_argument(
        "--poll-time-refresh",
        default="0s",
        help="write status.lastPollTime on its own at most this often, e.g. 5m (default 0s: "
        "only along with a real change, so steady endpoints cost the API server nothing)",
    )
    policy = PollPolicy()
    for flag, default, what in (
        (
            "--transitional-factor",
            policy.transitional_factor,
            "while Provisioning/Updating/Waking/Terminating",
        ),
        ("--terminal-factor", policy.terminal_factor, "once Terminated"),
        ("--not-found-factor", policy.not_found_factor, "while the provider says NotFound"),
    ):
        run.add_argument(
            flag,
            type=float,
            default=default,
            help=f"pollInterval multiplier {what} (default {default:.3g})",
        )

    probe = sub.add_parser("probe", help="poll one endpoint once, as the operator would")
    probe.add_argument(
        "-f",
        "--filename",
        required=True,
        help="InferenceEndpoint manifest (YAML or JSON); - for stdin",
    )
    probe.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")
    probe.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    _allow_insecure_http(probe)
    _add_transport_flags(probe)

    imp = sub.add_parser(
        "import",
        help="print an InferenceEndpoint manifest for each endpoint an account holds (writes "
        "nothing)",
    )
    source = imp.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "-f",
        "--filename",
        help="an InferenceProvider, ClusterInferenceProvider or InferenceEndpoint manifest "
        "naming the account (credentials from the environment, as probe); - for stdin",
    )
    source.add_argument(
        "--provider-ref",
        metavar="[KIND/]NAME",
        help="an InferenceProvider (ipr/NAME, in --namespace) or ClusterInferenceProvider "
        "(cipr/NAME) read through the current kube context; the manifests use it",
    )
    imp.add_argument(
        "-n", "--namespace", help="namespace of the manifests, where declared ones are skipped"
    )
    imp.add_argument(
        "--all", action="store_true", help="also print endpoints already declared there"
    )
    imp.add_argument(
        "--selector",
        action="append",
        default=[],
        metavar="PATTERN",
        help="only provider-side names matching this shell pattern, e.g. 'prod-*' (repeatable)",
    )
    imp.add_argument(
        "--partial",
        action="store_true",
        help="when the listing fails half-way, still print what was listed (exit code 3)",
    )
    imp.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")
    imp.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    _allow_insecure_http(imp)
    _add_transport_flags(imp)

    crd = sub.add_parser("crd", help="print a CustomResourceDefinition's YAML")
    crd.add_argument(
        "--kind",
        choices=["InferenceEndpoint", "InferenceProvider", "ClusterInferenceProvider"],
        default="InferenceEndpoint",
    )
    admission = sub.add_parser(
        "admission-policy",
        help="print the ValidatingAdmissionPolicies that let only who may read a Secret name it",
    )
    admission.add_argument(
        "--helm-template",
        action="store_true",
        help="as the chart's template (names per release, switched by admissionPolicy.enabled)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "probe":
        from .probe import probe

        return asyncio.run(probe(args))
    if args.command == "import":
        from .importer import import_endpoints

        return asyncio.run(import_endpoints(args))
    if args.command == "admission-policy":
        from .api.admission import chart_template_yaml, policy_yaml

        sys.stdout.write(chart_template_yaml() if args.helm_template else policy_yaml())
        return EXIT_OK
    from .api.crd import crd, crd_yaml
    from .api.provider_crd import provider_crd

    if args.kind == "InferenceEndpoint":
        document = crd()
    else:
        document = provider_crd(cluster=args.kind == "ClusterInferenceProvider")
    sys.stdout.write(crd_yaml(document))
    return EXIT_OK


def default_member_id() -> str:
    """Outside a pod: unique per process on a host, readable in `kubectl get leases`."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _fail(code: int, message: str) -> int:
    sys.stderr.write(f"inferenceops: {message}\n")
    return code


# --- run ---------------------------------------------------------------------------------

#: Loggers whose INFO lines say nothing a user acts on; the operator logs one line per endpoint
#: transition instead (poller.py), and an API-server outage once when it starts and once when it
#: ends (kube/informer.py).
NOISY_LOGGERS = (
    # One line per provider request at 10,000 endpoints is noise, and URLs carry endpoint ids.
    "httpx",
    "httpcore",
    # kopf's "Handler succeeded" per object event (kopf watches nothing of ours now, but would).
    "kopf.objects",
    # Each /healthz request: kopf's "Activity 'scheduler' succeeded" and aiohttp's access line.
    "kopf.activities.probe",
    "aiohttp.access",
)


def quiet_noisy_loggers() -> None:
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _run(args: argparse.Namespace) -> int:
    import kopf
    from prometheus_client import start_http_server

    from .app import MembershipSettings, OperatorSettings
    from .handlers import Launch, registry
    from .kube.client import own_namespace
    from .kube.leases import own_pod
    from .metrics import Metrics
    from .scheduler import SchedulerSettings

    try:
        refresh_seconds = parse_duration(args.poll_time_refresh)
    except InvalidSpecError as err:
        return _fail(EXIT_USAGE, f"--poll-time-refresh: {err}")
    refresh = timedelta(seconds=refresh_seconds) if refresh_seconds else None
    lease_namespace = args.lease_namespace or os.environ.get("POD_NAMESPACE") or own_namespace()
    if args.lease_duration < 3:
        return _fail(EXIT_USAGE, "--lease-duration must be at least 3 (seconds)")
    try:
        account_settings = _with_transport_flags(
            args, AccountSettings.at_rate(args.requests_per_second)
        )
    except ValueError as err:
        return _fail(EXIT_USAGE, str(err))
    kopf.configure(
        debug=args.log_level == "debug",
        quiet=args.log_level == "warning",
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL,
    )
    quiet_noisy_loggers()
    settings = OperatorSettings(
        scheduler=SchedulerSettings(
            poll_time_refresh=refresh,
            allow_insecure_http=args.allow_insecure_http,
            policy=PollPolicy(
                transitional_factor=args.transitional_factor,
                terminal_factor=args.terminal_factor,
                not_found_factor=args.not_found_factor,
            ),
        ),
        accounts=account_settings,
        namespaces=tuple(args.namespace),
        cluster_secret_namespaces=frozenset(args.cluster_secret_namespace or [own_namespace()]),
        membership=MembershipSettings(
            group=args.group,
            member_id=args.member_id or os.environ.get("POD_NAME") or default_member_id(),
            lease_namespace=lease_namespace,
            lease_duration=args.lease_duration,
            owner=own_pod(lease_namespace),
        ),
    )
    metrics = Metrics()
    # kopf stops (clean-up included) when this is set: by a root task that ended unexpectedly.
    stop_flag = asyncio.Event()
    stopped: list[str] = []

    def stop(reason: str) -> None:
        stopped.append(reason)
        stop_flag.set()

    if args.metrics_port:
        start_http_server(args.metrics_port, addr="0.0.0.0", registry=metrics.registry)
    liveness = f"http://0.0.0.0:{args.health_port}/healthz" if args.health_port else None
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            kopf.operator(
                registry=registry,
                clusterwide=not args.namespace,
                namespaces=args.namespace,
                standalone=True,
                liveness_endpoint=liveness,
                stop_flag=stop_flag,
                memo=kopf.Memo(launch=Launch(settings, metrics, stop)),
            )
        )
    if stopped:
        # Not 0: the kubelet (restartPolicy Always) and any supervisor restart it either way,
        # but a failed run must not look like a clean shutdown.
        return _fail(EXIT_STOPPED, stopped[0])
    return EXIT_OK
