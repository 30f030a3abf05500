"""The notebooks run top to bottom (on the small presets, from the session's warm cache)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def test_the_notebooks_are_committed_without_outputs():
    assert [p.name for p in NOTEBOOKS] == ["01_reproduce.ipynb", "02_alignment.ipynb",
                                           "03_fingerprint.ipynb", "04_circuits.ipynb"]
    for p in NOTEBOOKS:
        nb = nbformat.read(p, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), p.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, digits_run, owl_run, tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("INTERP_RUNS", str(tmp_path))
    # the kernel is "python3" started through PATH: make that this interpreter
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("plotly" in str(o.get("data", {})) for o in outputs)  # figures were shown
