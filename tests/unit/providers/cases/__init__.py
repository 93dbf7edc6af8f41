"""One module per provider, each defining `CASE: ConformanceCase` for test_conformance.py."""
