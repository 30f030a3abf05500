"""Storage: the content-addressed artifact store, the activation cache, garbage collection.

The bottom layer: imports nothing from the rest of interp (except ``interp.errors``).
"""
