"""``python -m interp.demo`` (what ``make demo`` runs): the default study and both reports.

1. Run (or reuse from the cache) the default owl-numbers study, its independent stages on
   ``INTERP_WORKERS`` processes.
2. With more than one worker, and when they are not in the store yet, start a second
   process that builds the fingerprint's SAE corpus activations and SAEs, then its circuit
   analysis, into the store (``interp.analysis.fingerprint.prepare``), so that they use the
   core the align report and the fingerprint's per-seed analysis leave idle.
3. ``python -m interp.align`` on the run: the align report; then the same SAE entries in
   the opposite order (each process builds about half of them).
4. ``python -m interp.fingerprint`` on the run finds its SAEs in the store and its
   circuit there (waiting on the entry's lock while the second process finishes it; it
   builds whatever that process failed to), then waits for the second process to exit.

The same reports, byte for byte, as running ``python -m interp.align`` and then
``python -m interp.fingerprint``, with one interpreter start-up instead of two. Exit
status: the first command's when it fails, else the second's.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

log = logging.getLogger(__name__)


def _prepare(run_dir: str) -> None:
    from interp.analysis.fingerprint import prepare

    prepare(run_dir, circuit=True)  # the entries are what it leaves behind


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m interp.demo",
                            description=__doc__.split("\n")[0]).parse_args(argv)
    import multiprocessing as mp

    from interp import align, fingerprint, requested_workers
    from interp.analysis.fingerprint import prepare
    from interp.cli import run_cli, setup_logging
    from interp.studies.runner import run_dir_or_default

    setup_logging()
    run: list[str] = []
    if run_cli(lambda: run.append(str(run_dir_or_default(None)))):
        return 2
    helper = None
    if requested_workers() > 1 and not prepare(run[0], cached_only=True):
        # the helper's bars would interleave with the report's; it keys its entries with the
        # thread count every process of this run has (INTERP_THREADS, set at import)
        old = os.environ.get("TQDM_DISABLE")
        os.environ["TQDM_DISABLE"] = "1"
        helper = mp.get_context("spawn").Process(target=_prepare, args=(run[0],))
        helper.start()
        if old is None:
            del os.environ["TQDM_DISABLE"]
        else:
            os.environ["TQDM_DISABLE"] = old
    rc = align.main(run)
    if helper is not None:
        # the same entries in the opposite order: each process builds about half of them,
        # waiting on the other's lock where it is building one, and reading it afterwards
        if not rc:
            run_cli(lambda: prepare(run[0], reverse=True))
    # the fingerprint reads the circuit entry the second process may still be building: it
    # waits on that entry's lock and reads it (or builds it, if that process failed)
    rc = rc or fingerprint.main(run)
    if helper is not None:
        if rc:  # nothing will read what it builds
            helper.terminate()
        helper.join()
        if helper.exitcode:
            log.warning("the SAE process failed (exit %s); the fingerprint built its entries",
                        helper.exitcode)
    return rc


if __name__ == "__main__":
    sys.exit(main())
