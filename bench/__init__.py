"""Benchmarks: scripts (`python -m bench.<name>`), never timed tests. Results go to bench/results/."""
