"""Metrics: pure functions over tensors and state dicts (alignment with dT, the recorder's
per-step reductions, feature shifts and edits, divergences, statistics over seeds).

No I/O; imports nothing from interp outside ``interp.metrics``.
"""
