"""The operator image's contract: what the Dockerfile declares, what image/build.sh declares, and
what a built OCI archive actually has. Standard library only, so any Python >= 3.11 runs it.

    python3 image/contract.py check ARCHIVE    # disagreements of a built image, exit 1 if any

Also the helpers image/build.sh needs (the pyproject.toml inputs of the lock files, rendering a
lock from `pip install --report`, the last layer of an OCI layout).
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import sys
import tarfile
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
BUILD_SH = REPO / "image" / "build.sh"
CHART = REPO / "charts" / "inferenceops" / "Chart.yaml"
PYPROJECT = REPO / "pyproject.toml"
LOCKS = {
    "runtime": REPO / "image" / "requirements.lock",
    "build": REPO / "image" / "build-tools.lock",
}

REF_NAME = "org.opencontainers.image.ref.name"
#: PATHs a `PATH=/opt/venv/bin:$PATH` inherits: Debian's default, and the python image's.
DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INHERITED_PATHS = ("/usr/local/bin:" + DEBIAN_PATH, DEBIAN_PATH)
PACKAGING_TOOLS = re.compile(r"(^|/)(site|dist)-packages/(pip|setuptools|wheel)/__init__\.py$")
CONSOLE_SCRIPT = "opt/venv/bin/inferenceops"
SHEBANG = b"#!/opt/venv/bin/python"

Contract = dict[str, Any]


# ---- the two declarations ------------------------------------------------------------------------


_VAR = re.compile(r"\$(?:\{(\w+)(?::-([^}]*))?\}|(\w+))")


def _expand(value: str, known: dict[str, str]) -> str:
    """Expand $NAME, ${NAME} and ${NAME:-default}; unknown names (inherited ENV) stay."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3)
        if name in known:
            return known[name]
        return m.group(2) if m.group(2) is not None else m.group(0)

    return _VAR.sub(one, value)


def _instructions(text: str) -> list[tuple[str, str]]:
    """Dockerfile instructions as (KEYWORD, arguments), continuation lines joined."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # also inside a continuation, as Docker does
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        keyword, _, rest = (buf + line).partition(" ")
        out.append((keyword.upper(), rest.strip()))
        buf = ""
    return out


def _pairs(args: str, known: dict[str, str]) -> dict[str, str]:
    """ENV/LABEL arguments: k=v pairs (quoted as in a shell), or the legacy `KEY value` form."""
    words = shlex.split(args)
    if words and "=" not in words[0]:
        return {words[0]: _expand(" ".join(words[1:]), known)}
    return {k: _expand(v, known) for k, _, v in (w.partition("=") for w in words)}


def _exec_form(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else ["/bin/sh", "-c", args]


def _normal_path(env: dict[str, str]) -> dict[str, str]:
    """Cut the inherited part of PATH, so /opt/venv/bin:$PATH equals /opt/venv/bin:<Debian's>."""
    if "PATH" not in env:
        return env
    path = env["PATH"].replace("${PATH}", "$PATH")
    for inherited in (*INHERITED_PATHS, "$PATH"):
        if path.endswith(":" + inherited):
            path = path[: -len(inherited)] + "$PATH"
            break
    return {**env, "PATH": path}


def dockerfile_contract(text: str | None = None) -> Contract:
    """The runtime (last) stage of the Dockerfile: user, workdir, entrypoint, cmd, ports, env,
    labels, and the Python minor of its `python:X.Y-...` base image."""
    text = DOCKERFILE.read_text() if text is None else text
    global_args: dict[str, str] = {}
    stage: Contract | None = None
    known: dict[str, str] = {}
    for keyword, args in _instructions(text):
        if keyword == "FROM":
            image = _expand(args.split()[0], global_args)
            m = re.search(r"(?:^|/)python:(\d+\.\d+)", image)
            stage = {
                "python": m.group(1) if m else image,
                "user": "",
                "workdir": "",
                "entrypoint": [],
                "cmd": [],
                "ports": [],
                "env": {},
                "labels": {},
            }
            known = {}
        elif keyword == "ARG":
            name, eq, default = args.partition("=")
            scope = global_args if stage is None else known
            value = shlex.split(default)[0] if default.strip() else ""
            scope[name.strip()] = value if eq else global_args.get(name.strip(), "")
        elif stage is None:
            continue
        elif keyword == "ENV":
            env = _pairs(args, known)
            stage["env"].update(env)
            known.update(env)
        elif keyword == "LABEL":
            stage["labels"].update(_pairs(args, known))
        elif keyword == "USER":
            stage["user"] = _expand(args, known)
        elif keyword == "WORKDIR":
            stage["workdir"] = _expand(args, known)
        elif keyword == "EXPOSE":
            stage["ports"] += [p if "/" in p else p + "/tcp" for p in args.split()]
        elif keyword in ("ENTRYPOINT", "CMD"):
            stage[keyword.lower()] = _exec_form(args)
    if stage is None:
        raise ValueError("no FROM in the Dockerfile")
    stage["ports"] = sorted(set(stage["ports"]))
    stage["env"] = _normal_path(stage["env"])
    return stage


def build_script_contract(text: str | None = None, image_tag: str | None = None) -> Contract:
    """The `image contract` block of image/build.sh (bash variables and arrays), with $IMAGE_TAG
    at its default, the chart's appVersion."""
    text = BUILD_SH.read_text() if text is None else text
    m = re.search(
        r"^# ---- image contract\b.*?\n(.*?)^# ---- end of image contract", text, re.M | re.S
    )
    if not m:
        raise ValueError("no '# ---- image contract' block in image/build.sh")
    known = {"IMAGE_TAG": chart_app_version() if image_tag is None else image_tag}
    values: dict[str, list[str]] = {}
    lines = iter(m.group(1).splitlines())
    for line in lines:
        if not (a := re.match(r"(\w+)=(.*)", line.strip())):
            continue
        name, rhs = a.groups()
        if rhs.startswith("("):
            while not rhs.rstrip().endswith(")"):
                rhs += "\n" + next(lines)
            rhs = rhs.strip()[1:-1]
        values[name] = [_expand(w, known) for w in shlex.split(rhs, comments=True)]

    def scalar(name: str) -> str:
        return (values.get(name) or [""])[0]

    return {
        "python": scalar("IMAGE_PYTHON"),
        "user": scalar("IMAGE_USER"),
        "workdir": scalar("IMAGE_WORKDIR"),
        "entrypoint": values.get("IMAGE_ENTRYPOINT", []),
        "cmd": values.get("IMAGE_CMD", []),
        "ports": sorted(set(values.get("IMAGE_PORTS", []))),
        "env": _normal_path(dict(v.partition("=")[::2] for v in values.get("IMAGE_ENV", []))),
        "labels": dict(v.partition("=")[::2] for v in values.get("IMAGE_LABELS", [])),
    }


def compare(
    expected: Contract,
    actual: Contract,
    names: tuple[str, str] = ("Dockerfile", "image/build.sh"),
    *,
    subset: bool = False,
) -> list[str]:
    """Disagreements between two contracts. subset: `actual` may have more env and labels (a
    built image inherits its base image's)."""
    out = []
    for key in sorted(expected.keys() & actual.keys()):
        want, got = expected[key], actual[key]
        if isinstance(want, dict) and isinstance(got, dict):
            for k in sorted(want.keys() | (set() if subset else got.keys())):
                if want.get(k) != got.get(k):
                    out.append(f"{key} {k}: {names[0]} {want.get(k)!r}, {names[1]} {got.get(k)!r}")
        elif want != got:
            out.append(f"{key}: {names[0]} {want!r}, {names[1]} {got!r}")
    return out


def chart_app_version() -> str:
    m = re.search(r'^appVersion:\s*"?([^"\s]+)"?', CHART.read_text(), re.M)
    if not m:
        raise ValueError(f"no appVersion in {CHART}")
    return m.group(1)


# ---- a built archive -------------------------------------------------------------------------


def _blob(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], digest: str) -> bytes:
    f = tar.extractfile(members["blobs/" + digest.replace(":", "/")])
    assert f is not None
    return f.read()


def _overlay(
    tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], layers: list[dict[str, Any]]
) -> tuple[set[str], dict[str, bytes]]:
    """The paths of the image's file system after applying every layer (with whiteouts), and the
    contents of the few files the checks read."""
    present: set[str] = set()
    wanted = {"etc/passwd", CONSOLE_SCRIPT}
    contents: dict[str, bytes] = {}
    for layer in layers:
        f = tar.extractfile(members["blobs/" + layer["digest"].replace(":", "/")])
        added: set[str] = set()
        gone: set[str] = set()
        gone_under: list[str] = []
        with tarfile.open(fileobj=f, mode="r|*") as lt:
            for m in lt:
                name = m.name.removeprefix("./").rstrip("/")
                parent, _, leaf = name.rpartition("/")
                if leaf == ".wh..wh..opq":  # the lower layers' content of parent is hidden
                    gone_under.append(parent + "/")
                elif leaf.startswith(".wh."):  # parent/name and all under it are deleted
                    target = f"{parent}/{leaf[4:]}".lstrip("/")
                    gone.add(target)
                    gone_under.append(target + "/")
                else:
                    added.add(name)
                    if name in wanted and m.isfile():
                        contents[name] = lt.extractfile(m).read()  # type: ignore[union-attr]
        prefixes = tuple(gone_under)
        present = {p for p in present if p not in gone and not p.startswith(prefixes)} | added
    return present, contents


def check_archive(path: str | Path, *, tag: str | None = None) -> list[str]:
    """Disagreements between an OCI archive (image/build.sh's, or `docker save` as OCI) and the
    Dockerfile's contract; [] if it keeps it. tag: the ref to check (default: the chart's
    appVersion, the tag the chart deploys)."""
    tag = chart_app_version() if tag is None else tag
    expected = dockerfile_contract()
    problems: list[str] = []
    with tarfile.open(path) as tar:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers()}
        index = json.loads(tar.extractfile(members["index.json"]).read())  # type: ignore[union-attr]
        refs = [
            d for d in index.get("manifests", []) if d.get("annotations", {}).get(REF_NAME) == tag
        ]
        if not refs:
            names = [d.get("annotations", {}).get(REF_NAME) for d in index.get("manifests", [])]
            return [f"index.json: no manifest with {REF_NAME}={tag!r} (has {names})"]
        manifest = json.loads(_blob(tar, members, refs[0]["digest"]))
        config = json.loads(_blob(tar, members, manifest["config"]["digest"]))
        present, contents = _overlay(tar, members, manifest["layers"])

    c = config.get("config") or {}
    minors = sorted(
        {
            m.group(2)
            for p in present
            if (m := re.fullmatch(r"usr(/local)?/bin/python(\d+\.\d+)", p))
        }
    )
    actual = {
        "python": minors[0] if len(minors) == 1 else minors,
        "user": c.get("User", ""),
        "workdir": c.get("WorkingDir", ""),
        "entrypoint": c.get("Entrypoint") or [],
        "cmd": c.get("Cmd") or [],
        "ports": sorted(c.get("ExposedPorts") or {}),
        "env": _normal_path(dict(e.partition("=")[::2] for e in c.get("Env") or [])),
        "labels": c.get("Labels") or {},
    }
    problems += compare(expected, actual, ("Dockerfile", "image"), subset=True)
    if (config.get("os"), config.get("architecture")) != ("linux", "amd64"):
        problems.append(f"platform: {config.get('os')}/{config.get('architecture')}")
    problems += [
        f"packaging tool in the image: /{p}" for p in sorted(present) if PACKAGING_TOOLS.search(p)
    ]
    script = contents.get(CONSOLE_SCRIPT, b"")
    if CONSOLE_SCRIPT not in present or not script.startswith(SHEBANG + b"\n"):
        problems.append(f"/{CONSOLE_SCRIPT}: missing or its shebang is not {SHEBANG.decode()}")
    uid, _, gid = expected["user"].partition(":")
    passwd = contents.get("etc/passwd", b"").decode()
    if not re.search(f"^[^:]*:[^:]*:{re.escape(uid)}:{re.escape(gid) or '[0-9]+'}:", passwd, re.M):
        problems.append(f"/etc/passwd: no user {expected['user']}")
    return problems


# ---- lock files ----------------------------------------------------------------------------------


def _pyproject() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text())


def project_dependencies() -> list[str]:
    return list(_pyproject()["project"]["dependencies"])


def build_requires() -> list[str]:
    return list(_pyproject()["build-system"]["requires"])


def inputs_digest() -> str:
    """What the lock files were resolved from; image/build.sh refuses a lock that differs."""
    data = json.dumps([project_dependencies(), build_requires()]).encode()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_name(requirement: str) -> str:
    m = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    return re.sub(r"[-_.]+", "-", m.group(0) if m else requirement).lower()


LOCK_HEADERS = {
    "runtime": "Runtime dependencies of the image's /opt/venv: pyproject.toml's [project] "
    "dependencies.",
    "build": "Build tools, run in a throwaway venv and not in the image: pip and pyproject.toml's "
    "[build-system] requires.",
}


def render_lock(kind: str, report: dict[str, Any]) -> str:
    """A hash-pinned requirements file from a `pip install --dry-run --report` of the image's
    target (see WHEEL_TARGET in image/build.sh)."""
    lines = [
        f"# {LOCK_HEADERS[kind]}",
        "# Generated by `bash image/build.sh --lock` for CPython 3.11 manylinux x86_64; "
        "do not edit.",
        f"# inputs: {inputs_digest()}",
    ]
    for item in sorted(report["install"], key=lambda i: canonical_name(i["metadata"]["name"])):
        meta, info = item["metadata"], item["download_info"]
        sha = info["archive_info"]["hashes"]["sha256"]
        lines.append(f"{canonical_name(meta['name'])}=={meta['version']} \\")
        lines.append(f"    --hash=sha256:{sha}  # {info['url'].rsplit('/', 1)[-1]}")
    return "\n".join(lines) + "\n"


def last_layer(layout: str | Path, tag: str) -> str:
    """Digest of the last layer of `tag` in an OCI image layout directory."""
    layout = Path(layout)

    def blob(digest: str) -> Any:
        return json.loads((layout / "blobs" / digest.replace(":", "/")).read_text())

    index = json.loads((layout / "index.json").read_text())
    (ref,) = [d for d in index["manifests"] if d.get("annotations", {}).get(REF_NAME) == tag]
    return str(blob(ref["digest"])["layers"][-1]["digest"])


def main(argv: list[str]) -> int:
    match argv:
        case ["check", archive]:
            problems = check_archive(archive)
            print("\n".join(problems) or f"{archive}: keeps the Dockerfile's contract")
            return 1 if problems else 0
        case ["contract"]:
            print(
                json.dumps(
                    {
                        "Dockerfile": dockerfile_contract(),
                        "image/build.sh": build_script_contract(),
                    },
                    indent=2,
                )
            )
        case ["dependencies"]:
            print("\n".join(project_dependencies()))
        case ["build-requires"]:
            print("\n".join(build_requires()))
        case ["inputs-digest"]:
            print(inputs_digest())
        case ["lock", ("runtime" | "build") as kind, report]:
            sys.stdout.write(render_lock(kind, json.loads(Path(report).read_text())))
        case ["last-layer", layout, tag]:
            print(last_layer(layout, tag))
        case _:
            print(__doc__, file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
