"""Analyses: computations over a finished run that return typed results (``results.py``):
align (alignment with the teacher direction), fingerprint (where the trait lives), SAEs.

Imports storage, metrics and studies; never reports or the CLIs.
"""
