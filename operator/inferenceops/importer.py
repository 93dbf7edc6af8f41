"""`inferenceops import`: an account's remote endpoints as InferenceEndpoint manifests, printed.

The account is a provider object (`--provider-ref`, read through the current kube context, or
`-f` a manifest of one) or an InferenceEndpoint whose block names it (`-f`, its endpoint fields
ignored). Credentials follow `probe`'s rules (the environment), else, with `--provider-ref`, the
Secret the object names. Nothing is written, to the cluster or the provider: a listing is only
GETs, each through the account's budget. A listing that fails half-way prints nothing (a partial
file committed by mistake would look like the whole account) unless `--partial` asks for it.
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import functools
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from .accounts import AccountPool, AccountSettings
from .api.provider_kinds import CLUSTER_KIND, NAMESPACED_KIND, account_model
from .api.v1alpha1 import API_VERSION, GROUP
from .cli import EXIT_OK, EXIT_PROVIDER, EXIT_USAGE, TOKEN_ENV, _fail, _with_transport_flags
from .kube.client import own_namespace
from .kube.readonly import Cluster, KubeCluster
from .probe import secret_env
from .providers import (
    CREDENTIAL_SEPARATOR,
    MAX_LISTED,
    Provider,
    ProviderError,
    RemoteEndpoint,
    Target,
    declared_ids,
    too_many_listed,
)
from .providers import get as get_provider
from .providers.http import validation_summary
from .providers.sanitize import MESSAGE_CHARS, clean, redacting, redactor_for

__all__ = [
    "ID_ANNOTATION",
    "NAME_ANNOTATION",
    "Account",
    "import_endpoints",
    "manifest_names",
]

#: The provider-side name an imported manifest was derived from (names are rewritten to DNS-1123).
NAME_ANNOTATION = f"{GROUP}/provider-name"
ID_ANNOTATION = f"{GROUP}/provider-id"
#: Room left in a 63-character DNS-1123 label for "-" and the collision suffix.
_NAME_CHARS = 56
_SUFFIX_CHARS = 6
#: Longest provider-side name kept in the annotation.
_ANNOTATION_CHARS = 253


@dataclass(frozen=True, slots=True)
class Account:
    """What a listing needs and what each printed manifest repeats."""

    provider: Provider[Any]
    #: The account's block: the provider object's, or the template endpoint's without its
    #: endpoint fields; inlined into each manifest when there is no providerRef.
    block: Mapping[str, Any]
    provider_ref: Mapping[str, str] | None
    secret_namespace: str
    requests_per_second: float | None = None
    burst: int | None = None


def account_from(document: Mapping[str, Any], namespace: str) -> Account:
    """The account a provider object or an endpoint manifest names; ValueError says why not."""
    kind = document.get("kind")
    meta = document.get("metadata") or {}
    spec = document.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise ValueError(f"{kind} spec is not an object")
    names = [name for name in spec if name not in ("providerRef",) and _provider_or_none(name)]
    if len(names) != 1:
        raise ValueError(f"{kind} must have exactly one provider block (found {len(names)})")
    provider = get_provider(names[0])
    block = dict(spec[names[0]] or {})
    if kind in (NAMESPACED_KIND, CLUSTER_KIND):
        try:
            account = account_model(provider).model_validate(block)
        except ValidationError as err:
            raise ValueError(validation_summary(err, within=provider.name)) from None
        shared = account.model_dump(by_alias=True, exclude_none=True)
        rate, burst = shared.pop("requestsPerSecond", None), shared.pop("burst", None)
        own = str(meta.get("namespace") or namespace)
        secrets = str(spec.get("secretNamespace") or "") if kind == CLUSTER_KIND else own
        ref = {"kind": str(kind), "name": str(meta.get("name", ""))}
        return Account(provider, shared, ref, secrets, rate, burst)
    if kind == "InferenceEndpoint":
        if spec.get("providerRef") is not None:
            raise ValueError("the endpoint uses a providerRef: import with --provider-ref")
        config = provider.config_model
        endpoint = {config.model_fields[f].alias or f for f in config.endpoint_fields}
        # A Takeoff server's URL is where its listing comes from (and each manifest repeats it).
        shared = {k: v for k, v in block.items() if k not in endpoint or k == "url"}
        return Account(provider, shared, None, str(meta.get("namespace") or namespace))
    raise ValueError(f"expected an InferenceProvider, ClusterInferenceProvider or endpoint: {kind}")


def _provider_or_none(name: str) -> Provider[Any] | None:
    try:
        return get_provider(name)
    except KeyError:
        return None


def dns_label(text: str) -> str:
    """`text` as the start of a DNS-1123 label: lower case, runs of anything else one "-"."""
    label = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return label[:_NAME_CHARS].rstrip("-")


def _suffix(ident: str) -> str:
    return hashlib.sha256(ident.encode()).hexdigest()[:_SUFFIX_CHARS]


def manifest_names(remotes: Sequence[RemoteEndpoint], taken: Iterable[str]) -> dict[str, str]:
    """A DNS-1123 name per remote id, stable from run to run: the provider-side name (the id
    where it has none that fits), and, where two would be equal or one is taken already, the
    name plus a short hash of the id."""
    used = set(taken)
    names: dict[str, str] = {}
    for remote in sorted(remotes, key=lambda r: (r.name, r.id)):
        base = dns_label(remote.name) or dns_label(remote.id) or "endpoint"
        name = base
        if name in used:
            name = f"{base}-{_suffix(remote.id)}"
        while name in used:  # a hash that collides too: lengthen it
            name = f"{name}-{_suffix(name)}"
        used.add(name)
        names[remote.id] = name
    return names


def selected(name: str, selectors: Sequence[str]) -> bool:
    """`--selector`: shell-style patterns on provider-side names; any one matching selects."""
    return not selectors or any(fnmatch.fnmatchcase(name, p) for p in selectors)


def manifest(account: Account, remote: RemoteEndpoint, name: str, namespace: str) -> dict[str, Any]:
    block = dict(remote.fields) if account.provider_ref else {**account.block, **remote.fields}
    spec: dict[str, Any] = {}
    if account.provider_ref is not None:
        spec["providerRef"] = dict(account.provider_ref)
    spec[account.provider.name] = block
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceEndpoint",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {NAME_ANNOTATION: remote.name, ID_ANNOTATION: remote.id},
        },
        "spec": spec,
    }


async def list_all(
    provider: Provider[Any],
    client: Any,
    target: Target[Any],
    progress: Callable[[int, int], None],
    listed: list[RemoteEndpoint],
) -> None:
    """Every page of the listing into `listed` (kept on error, for `--partial`)."""
    pages = 0
    async for page in provider.list_endpoints(client, target):
        pages += 1
        listed.extend(page)
        if len(listed) > MAX_LISTED:
            del listed[MAX_LISTED:]
            raise too_many_listed()
        progress(pages, len(listed))


def _credential(account: Account, config: Any, cluster: Callable[[], Cluster] | None) -> str | None:
    """The environment's (as `probe`), else, for a provider object read from the cluster
    (`cluster` given), the Secret it names."""
    refs = config.secret_refs()
    if not refs:
        return None
    values = [
        os.environ.get(secret_env(r.key), os.environ.get(TOKEN_ENV, "")).strip() for r in refs
    ]
    if all(values):
        return CREDENTIAL_SEPARATOR.join(values)
    if cluster is None:
        wanted = ", ".join(secret_env(r.key) for r in refs) if len(refs) > 1 else TOKEN_ENV
        raise ValueError(f"{account.provider.name} needs a credential: set {wanted}")
    kube = cluster()
    return CREDENTIAL_SEPARATOR.join(
        kube.secret_value(account.secret_namespace, r.name, r.key) for r in refs
    )


def _load(args: argparse.Namespace, namespace: str, cluster: Callable[[], Cluster]) -> Account:
    if args.provider_ref:
        kind, _, name = args.provider_ref.rpartition("/")
        kind = {"": NAMESPACED_KIND, "ipr": NAMESPACED_KIND, "cipr": CLUSTER_KIND}.get(kind, kind)
        if kind not in (NAMESPACED_KIND, CLUSTER_KIND):
            raise ValueError(f"--provider-ref {args.provider_ref!r}: [KIND/]NAME, KIND ipr or cipr")
        return account_from(cluster().provider_object(kind, namespace, name), namespace)
    if args.filename == "-":
        text = sys.stdin.read()
    else:
        with open(args.filename, encoding="utf-8") as f:
            text = f.read()
    docs = [d for d in yaml.safe_load_all(text) if isinstance(d, Mapping)]
    if len(docs) != 1:
        raise ValueError(f"{args.filename} must hold exactly one manifest (found {len(docs)})")
    return account_from(docs[0], namespace)


async def import_endpoints(
    args: argparse.Namespace,
    *,
    cluster: Callable[[], Cluster] = KubeCluster,
    pool: Callable[[AccountSettings], AccountPool] = AccountPool,
) -> int:
    """`inferenceops import ARGS`: its exit code; manifests on stdout, progress on stderr."""
    # kubectl's rule: the flag, else the kube context's namespace, else default.
    namespace = args.namespace or own_namespace()
    cluster = functools.cache(cluster)  # one config load, however many reads
    try:
        settings = _with_transport_flags(args, AccountSettings(read_timeout=args.timeout))
        account = await asyncio.to_thread(_load, args, namespace, cluster)
        provider = account.provider
        if not provider.lists:
            return _fail(EXIT_USAGE, f"{provider.name}: {provider.listing}")
        try:
            config = provider.listing_config(account.block)
        except ValidationError as err:
            return _fail(EXIT_USAGE, validation_summary(err, within=provider.name))
        if config.secret_refs() and not args.allow_insecure_http:
            for alias, url in config.destinations().items():
                if not url.startswith("https://"):
                    return _fail(
                        EXIT_USAGE,
                        f"InsecureURL: {provider.name}.{alias} {url} is not https: the "
                        "credential would be sent unencrypted (--allow-insecure-http for "
                        "emulators and tests)",
                    )
        from_cluster = cluster if args.provider_ref else None
        credential = await asyncio.to_thread(_credential, account, config, from_cluster)
        declared: set[str] = set()
        taken: set[str] = set()
        if not args.all or args.provider_ref:
            try:
                existing = await asyncio.to_thread(lambda: cluster().endpoints(namespace))
            except Exception as err:  # no kube context: a file-only import skips nothing
                if args.provider_ref:
                    raise
                sys.stderr.write(f"inferenceops: not skipping declared endpoints: {err}\n")
                existing = []
            taken = {str((e.get("metadata") or {}).get("name")) for e in existing}
            declared = declared_ids(provider, existing) if not args.all else set()
    except (ValueError, OSError, LookupError, yaml.YAMLError) as err:
        return _fail(EXIT_USAGE, str(err).splitlines()[0] if str(err) else type(err).__name__)

    def progress(pages: int, count: int) -> None:
        sys.stderr.write(f"listed {count} endpoints ({pages} pages)\n")

    accounts = pool(settings)
    listed: list[RemoteEndpoint] = []
    failure: str | None = None
    redactor = redactor_for(credential)
    target = Target(key="import", config=config, credential=credential)
    key = ("import", provider.account_key(config))
    client = accounts.get(
        provider.name, key, requests_per_second=account.requests_per_second, burst=account.burst
    ).client
    try:
        with redacting(redactor):
            await list_all(provider, client, target, progress, listed)
    except ProviderError as err:
        failure = f"{err.reason}: {clean(err.message, MESSAGE_CHARS, redactor)}"
    finally:
        await accounts.aclose()
    if failure is not None and not args.partial:
        return _fail(
            EXIT_PROVIDER,
            f"listing failed after {len(listed)} endpoints: {failure}; nothing printed "
            "(--partial prints what was listed)",
        )
    # Provider strings are hostile: a name becomes one masked printable line before it names
    # anything, and an entry whose id carries the credential is dropped, not committed to git.
    shown = [
        RemoteEndpoint(r.id, clean(r.name, _ANNOTATION_CHARS, redactor), r.fields)
        for r in listed
        if redactor is None or redactor(r.id) == r.id
    ]
    wanted = [r for r in shown if r.id not in declared and selected(r.name, args.selector)]
    wanted = list({r.id: r for r in wanted}.values())
    names = manifest_names(wanted, taken - {""})
    docs = [manifest(account, r, names[r.id], namespace) for r in wanted]
    sys.stderr.write(
        f"{len(listed)} remote endpoints, {len(listed) - len(wanted)} skipped "
        f"(declared in {namespace} or not selected), {len(docs)} manifests\n"
    )
    if args.output == "json":
        sys.stdout.write(json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}, indent=2))
        sys.stdout.write("\n")
    else:
        sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False) if docs else "")
    if failure is not None:
        return _fail(EXIT_PROVIDER, f"listing failed after {len(listed)} endpoints: {failure}")
    return EXIT_OK
