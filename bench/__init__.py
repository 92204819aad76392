"""Benchmarks: each prints p50/p99 beside a raw-Temporal baseline measured in the same run."""
