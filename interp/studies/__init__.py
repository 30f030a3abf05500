"""Studies: the synthetic world, filters, models and training loops, and the registered
studies (digits-aux, owl-numbers) that turn a config into a run directory.

Imports storage, metrics and reports (a study writes its own report.html); never the
analyses or the CLIs.
"""
