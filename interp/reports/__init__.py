"""Reports: JSON, markdown and self-contained HTML writers that render typed results.

They compute nothing. Import only ``interp.metrics.stats``, ``interp.storage.store``'s
writers and ``interp.analysis.results``.
"""
