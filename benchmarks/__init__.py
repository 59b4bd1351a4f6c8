"""Benchmark scripts: each prints numbers for a baseline and ours, measured in the same invocation."""
