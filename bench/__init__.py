"""Benchmarks: scripts (not tests) that print figures and ratios; see bench/README.md."""
