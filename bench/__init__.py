"""Benchmarks of the deltacloud gRPC server, run as modules (python -m bench.watch_fanout)."""
