"""`python -m inferenceops`: the `inferenceops` command (cli.py)."""

import sys

from .cli import main

sys.exit(main())
