"""How long each notebook takes on the default studies, run twice (cold, then warm).

    python analyses/notebook_times.py

Executes notebooks/*.ipynb with nbclient as Jupyter would (kernel in notebooks/, the
repository's cache), without INTERP_NOTEBOOK_SMALL, so on the default studies. The first
run builds whatever the cache lacks; the second is the warm time.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    os.environ.pop("INTERP_NOTEBOOK_SMALL", None)
    # the kernel is "python3" started through PATH: make that this interpreter
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    print("| notebook | first run (s) | second run (s) | errors |\n|---|---|---|---|")
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        times, errors = [], 0
        for _ in range(2):
            nb = nbformat.read(path, as_version=4)
            t0 = time.perf_counter()
            NotebookClient(nb, timeout=1800, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute()
            times.append(time.perf_counter() - t0)
            errors += sum(o.output_type == "error" for c in nb.cells
                          if c.cell_type == "code" for o in c.outputs)
        print(f"| {path.name} | {times[0]:.1f} | {times[1]:.1f} | {errors} |", flush=True)


if __name__ == "__main__":
    main()
