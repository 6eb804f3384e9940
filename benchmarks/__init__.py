"""Benchmark scripts, one per headline figure.

Run from the repository root: `python -m benchmarks.NAME [--quick] [--json FILE]`.
"""
