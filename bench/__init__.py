"""Benchmarks of the service: dataset, load runs, report (`make bench`)."""
