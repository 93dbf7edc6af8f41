"""The scale benchmark (issue 6): `bench/run.py` drives it, `bench/floor.py` is the floor.

See docs/performance.md for the method and the latest numbers.
"""

from pathlib import Path

#: The repository's root (crds/, tests/, bench/results/).
ROOT = Path(__file__).resolve().parents[1]
