"""Deterministic orchestration only. ``ALL`` lists every workflow a worker registers."""
