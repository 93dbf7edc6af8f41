"""The `inferenceops-emulator` command (also `python -m inferenceops_emulator`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence

from inferenceops.cli import TOKEN_ENV

from .server import DEFAULT_PORT, serve_forever


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inferenceops-emulator",
        description="Serve the providers' status APIs, as inferenceops polls them, on one port.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV, "emulator-token"),
        help=f"accepted credential (default: ${TOKEN_ENV} or emulator-token)",
    )
    parser.add_argument("--seed", help="YAML/JSON file of endpoints to create at start")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # Ctrl-C is how a developer stops it: no traceback for that.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(args.host, args.port, args.token, args.seed))
    return 0
