"""Reports: JSON, markdown and self-contained HTML writers that render typed results.

They compute nothing. Import only ``interp.metrics``, ``interp.storage.store``'s writers,
``interp.storage.rundir`` (reading a run's JSON) and ``interp.analysis.results``.
"""
