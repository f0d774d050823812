"""Offline benchmarks of CC API against the bundled mock model (see docs/benchmarks.md)."""
