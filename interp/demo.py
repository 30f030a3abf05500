"""``python -m interp.demo`` (what ``make demo`` runs): the default study and both reports.

1. ``python -m interp.align``: runs (or reuses from the cache) the default owl-numbers
   study, its independent stages on ``INTERP_WORKERS`` processes, and writes the align
   report beside the run.
2. ``python -m interp.fingerprint`` on the same run: SAEs, features, the causal check, the
   circuit.

The same as running the two commands one after the other, with one interpreter start-up
instead of two. Exit status: the first command's when it fails, else the second's.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m interp.demo",
                            description=__doc__.split("\n")[0]).parse_args(argv)
    from interp import align, fingerprint

    return align.main([]) or fingerprint.main([])


if __name__ == "__main__":
    sys.exit(main())
