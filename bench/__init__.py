"""Benchmarks of the deltacloud gRPC server (run as modules, e.g. ``python -m bench.watch_fanout``)."""
