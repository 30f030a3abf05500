"""Benchmarks: scripts that print a table; never timed unit tests.

``interp`` is imported first so that every row runs under the toolkit's process-start
settings (torch threads, OpenMP waiting; see ``interp/__init__.py``) whatever it imports.
"""

import interp  # noqa: F401
