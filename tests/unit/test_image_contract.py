"""The two recipes of the operator image (Dockerfile, image/build.sh) declare the same contract,
and image/contract.py, which the e2e suite uses on a built archive, catches a broken one."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import re
import sys
import tarfile
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _load_contract() -> ModuleType:
    spec = importlib.util.spec_from_file_location("image_contract", REPO / "image" / "contract.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


contract = _load_contract()


def test_build_script_declares_the_dockerfile_contract() -> None:
    dockerfile = contract.dockerfile_contract()
    assert dockerfile["python"] == "3.11"
    assert dockerfile["user"] == "65532:65532"
    assert dockerfile["entrypoint"] == ["inferenceops"]
    assert dockerfile["ports"] == ["8081/tcp", "9090/tcp"]
    assert contract.compare(dockerfile, contract.build_script_contract()) == []


@pytest.mark.parametrize(
    ("side", "old", "new", "key"),
    [
        ("Dockerfile", "EXPOSE 8081 9090", "EXPOSE 8081 9091", "ports"),
        ("Dockerfile", "USER 65532:65532", "USER 65532", "user"),
        ("Dockerfile", 'CMD ["run"]', 'CMD ["run", "--log-format=json"]', "cmd"),
        ("Dockerfile", "PYTHONUNBUFFERED=1 \\", "PYTHONUNBUFFERED=1 TZ=UTC \\", "env TZ"),
        ("Dockerfile", "python:3.11-slim-bookworm", "python:3.12-slim-bookworm", "python"),
        ("Dockerfile", "ARG VERSION=0.1.0", "ARG VERSION=0.2.0", "labels"),
        (
            "image/build.sh",
            "IMAGE_ENTRYPOINT=(inferenceops)",
            "IMAGE_ENTRYPOINT=(python3)",
            "entrypoint",
        ),
        ("image/build.sh", "IMAGE_WORKDIR=/", "IMAGE_WORKDIR=/tmp", "workdir"),
        ("image/build.sh", "  VIRTUAL_ENV=/opt/venv\n", "", "env VIRTUAL_ENV"),
        ("image/build.sh", "PATH=/opt/venv/bin:", "PATH=", "env PATH"),
        (
            "image/build.sh",
            "org.opencontainers.image.licenses=Apache-2.0",
            "org.opencontainers.image.licenses=MIT",
            "labels",
        ),
    ],
)
def test_a_change_on_one_side_only_is_caught(side: str, old: str, new: str, key: str) -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    build_sh = (REPO / "image" / "build.sh").read_text()
    if side == "Dockerfile":
        assert old in dockerfile
        dockerfile = dockerfile.replace(old, new)
    else:
        assert old in build_sh
        build_sh = build_sh.replace(old, new)
    problems = contract.compare(
        contract.dockerfile_contract(dockerfile), contract.build_script_contract(build_sh)
    )
    assert problems
    assert all(p.startswith(key) for p in problems), problems


def test_image_version_is_the_charts_app_version_and_the_projects_version() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    dockerfile = contract.dockerfile_contract()["labels"]["org.opencontainers.image.version"]
    assert contract.chart_app_version() == project == dockerfile


def test_chart_runs_the_image_the_way_its_contract_says() -> None:
    chart = REPO / "charts" / "inferenceops"
    values = yaml.safe_load((chart / "values.yaml").read_text())
    c = contract.dockerfile_contract()
    pod = values["podSecurityContext"]
    assert f"{pod['runAsUser']}:{pod['runAsGroup']}" == c["user"]
    assert (
        sorted(f"{p}/tcp" for p in (values["healthPort"], values["metrics"]["port"])) == c["ports"]
    )
    # The chart's args replace CMD and keep ENTRYPOINT: they start with the same subcommand.
    helpers = (chart / "templates" / "_helpers.tpl").read_text()
    args = re.search(r'define "inferenceops.args" -}}\n- (\S+)\n', helpers)
    assert args and c["entrypoint"] == ["inferenceops"] and [args.group(1)] == c["cmd"]
    # The chart deploys repository `inferenceops`, the name image/build.sh gives by default.
    assert values["image"]["repository"] == "inferenceops"
    assert "IMAGE_NAME=${IMAGE_NAME:-inferenceops}" in (REPO / "image" / "build.sh").read_text()


def test_lock_files_were_resolved_from_the_current_pyproject() -> None:
    """Else image/build.sh refuses to build: run `bash image/build.sh --lock`."""
    for kind, path in contract.LOCKS.items():
        text = path.read_text()
        assert f"# inputs: {contract.inputs_digest()}\n" in text, f"{path.name} is stale"
        locked = {
            contract.canonical_name(line)
            for line in text.splitlines()
            if re.match(r"[A-Za-z0-9]", line)
        }
        wanted = (
            contract.project_dependencies()
            if kind == "runtime"
            else ["pip", *contract.build_requires()]
        )
        assert {contract.canonical_name(r) for r in wanted} <= locked, path.name
        assert all(
            re.search(r"--hash=sha256:[0-9a-f]{64}", line)
            for line in text.splitlines()[3:]
            if line.startswith("    ")
        )


# ---- check_archive on small hand-made archives ----------------------------------------------


def _tar_bytes(files: dict[str, bytes], *, gz: bool) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0) if gz else raw.getvalue()


def _archive(
    path: Path, layers: list[dict[str, bytes]], config: dict[str, object], tag: str = "0.1.0"
) -> Path:
    blobs: dict[str, bytes] = {}

    def add(data: bytes) -> dict[str, object]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs["blobs/" + digest.replace(":", "/")] = data
        return {"digest": digest, "size": len(data)}

    manifest = {
        "schemaVersion": 2,
        "config": add(json.dumps(config).encode()),
        "layers": [add(_tar_bytes(layer, gz=True)) for layer in layers],
    }
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                **add(json.dumps(manifest).encode()),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    files = {
        "oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
        "index.json": json.dumps(index).encode(),
        **blobs,
    }
    path.write_bytes(_tar_bytes(files, gz=False))
    return path


def _good_image() -> tuple[list[dict[str, bytes]], dict[str, object]]:
    c = contract.build_script_contract()
    config: dict[str, object] = {
        "os": "linux",
        "architecture": "amd64",
        "config": {
            "User": c["user"],
            "WorkingDir": c["workdir"],
            "Entrypoint": c["entrypoint"],
            "Cmd": c["cmd"],
            "ExposedPorts": {p: {} for p in c["ports"]},
            "Env": [f"{k}={v.replace('$PATH', contract.DEBIAN_PATH)}" for k, v in c["env"].items()],
            "Labels": c["labels"],
        },
    }
    base = {
        "usr/bin/python3.11": b"\x7fELF",
        "etc/passwd": b"root:x:0:0::/root:/bin/sh\nnonroot:x:65532:65532::/nonexistent:/x\n",
        "usr/lib/python3/dist-packages/pip/__init__.py": b"",
    }
    app = {
        "opt/venv/bin/inferenceops": b"#!/opt/venv/bin/python\nimport sys\n",
        "usr/lib/python3/dist-packages/.wh.pip": b"",  # deleted, as the Dockerfile does
    }
    return [base, app], config


def test_check_archive_accepts_an_image_that_keeps_the_contract(tmp_path: Path) -> None:
    layers, config = _good_image()
    assert contract.check_archive(_archive(tmp_path / "ok.tar", layers, config)) == []


def test_check_archive_reports_each_broken_promise(tmp_path: Path) -> None:
    layers, config = _good_image()
    config["config"]["User"] = "0:0"  # type: ignore[index]
    config["config"]["Env"] = ["PATH=/usr/bin:/bin"]  # type: ignore[index]
    del layers[1]["usr/lib/python3/dist-packages/.wh.pip"]
    layers[1]["opt/venv/bin/inferenceops"] = b"#!/usr/local/bin/python3\n"
    problems = contract.check_archive(_archive(tmp_path / "bad.tar", layers, config))
    text = "\n".join(problems)
    for expected in (
        "user:",
        "env PATH",
        "env VIRTUAL_ENV",
        "packaging tool in the image: /usr/lib/python3/dist-packages/pip/__init__.py",
        "shebang",
    ):
        assert expected in text, problems
    wrong_tag = _archive(tmp_path / "tag.tar", *_good_image(), tag="latest")
    assert contract.check_archive(wrong_tag) == [
        "index.json: no manifest with org.opencontainers.image.ref.name='0.1.0' (has ['latest'])"
    ]


def _pip_installs(dockerfile: str) -> list[list[str]]:
    """Every `pip ... install ...` command of the Dockerfile's RUN instructions, as words."""
    commands = []
    for keyword, args in contract._instructions(dockerfile):
        if keyword != "RUN":
            continue
        for command in re.split(r"&&|;", args):
            words = command.split()
            if words and words[0] in ("pip", "pip3") and "install" in words:
                commands.append(words)
    return commands


def _unlocked_installs(dockerfile: str) -> list[str]:
    """pip installs that could fetch something the locks do not pin: neither from a lock with
    --require-hashes nor a local wheel without its dependencies and the index."""
    problems = []
    for words in _pip_installs(dockerfile):
        locked = "--require-hashes" in words and "--requirement" in words
        local = "--no-deps" in words and "--no-index" in words
        if not (locked or local):
            problems.append(" ".join(words))
    return problems


def test_the_dockerfile_installs_from_the_same_locks_as_make_image() -> None:
    """The Dockerfile and image/build.sh install the same hash-pinned packages: the runtime
    dependencies only from image/requirements.lock with --require-hashes, the build tools from
    image/build-tools.lock, and the project wheel with --no-deps (nothing resolved beside)."""
    dockerfile = contract.DOCKERFILE.read_text()
    installs = _pip_installs(dockerfile)
    assert installs, "no pip install in the Dockerfile"
    assert _unlocked_installs(dockerfile) == []
    locks = {w[w.index("--requirement") + 1] for w in installs if "--requirement" in w}
    assert locks == {"image/requirements.lock", "image/build-tools.lock"}
    copied = " ".join(
        args for keyword, args in contract._instructions(dockerfile) if keyword == "COPY"
    )
    assert "image/requirements.lock" in copied and "image/build-tools.lock" in copied
    assert "--require-hashes" in (REPO / "image" / "build.sh").read_text()


def test_an_unlocked_install_in_the_dockerfile_is_caught() -> None:
    unlocked = "RUN pip --python /opt/venv/bin/python install /wheels/inferenceops-*.whl\n"
    assert _unlocked_installs(unlocked) == [
        "pip --python /opt/venv/bin/python install /wheels/inferenceops-*.whl"
    ]
