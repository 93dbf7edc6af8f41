"""An httpx client for the API server, built from the credentials kopf logged in with.

kopf offers no public call to patch an object outside a handler, so status and Events go through
this client; using kopf's ConnectionInfo keeps one login path for both.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from typing import Any

import httpx
import kopf

__all__ = ["api_client", "login"]


def login(**kwargs: Any) -> kopf.ConnectionInfo:
    """In-cluster service account first, then the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    if info is None:
        raise kopf.LoginError("no in-cluster service account and no kubeconfig found")
    return info


def _pem(data: str | bytes) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return raw if raw.lstrip().startswith(b"-----") else base64.b64decode(raw)


def _ssl_context(info: kopf.ConnectionInfo, scratch: str) -> ssl.SSLContext | bool:
    if info.insecure:
        return False
    context = ssl.create_default_context()
    if info.ca_path:
        context.load_verify_locations(cafile=os.fsdecode(info.ca_path))
    elif info.ca_data:
        context.load_verify_locations(cadata=_pem(info.ca_data).decode())
    cert, key = info.certificate_path, info.private_key_path
    # The ssl module loads client certificates only from files; kubeconfigs often embed them.
    if info.certificate_data:
        cert = _write(scratch, "client.crt", _pem(info.certificate_data))
    if info.private_key_data:
        key = _write(scratch, "client.key", _pem(info.private_key_data))
    if cert:
        context.load_cert_chain(os.fsdecode(cert), os.fsdecode(key) if key else None)
    return context


def _write(directory: str, name: str, data: bytes) -> str:
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def api_client(info: kopf.ConnectionInfo, *, max_connections: int = 20) -> httpx.AsyncClient:
    scratch = tempfile.mkdtemp(prefix="inferenceops-")
    headers = {"User-Agent": "inferenceops/0.1", "Accept": "application/json"}
    if info.token:
        headers["Authorization"] = f"{info.scheme or 'Bearer'} {info.token}"
    auth = httpx.BasicAuth(info.username, info.password or "") if info.username else None
    return httpx.AsyncClient(
        base_url=info.server,
        verify=_ssl_context(info, scratch),
        headers=headers,
        auth=auth,
        timeout=httpx.Timeout(30.0, connect=10.0),
        limits=httpx.Limits(max_connections=max_connections),
    )
