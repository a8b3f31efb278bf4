"""Benchmarks: what a turn costs, how it grows, against the reference framework and the storage floor.

Run `bench/run` (or `python -m bench --help` in an environment with the project's requirements).
"""
