"""Sweeps: a grid of study configs run on an executor (local processes or Slurm through
submitit), finished studies skipped, one table across them (``python -m interp.sweep``).

Imports studies (to build and run configs), storage, metrics and reports (the table's page).
"""
