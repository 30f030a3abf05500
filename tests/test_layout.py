"""The package's layering, as each module's docstring states it: world -> models ->
distillation -> cache -> analysis -> reports, with the CLIs on top. A module that imports
a layer it must not (even inside a function) fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "interp"

# subpackage -> the interp modules it may import (prefixes); errors and validation are the
# foundation every layer may use, with the process-start settings of interp/__init__.py
# (and its scoped environment for the processes a layer starts)
BASE = ("interp.errors", "interp.validation", "interp.requested_workers",
        "interp.requested_threads", "interp.available_cores", "interp.environ")
ALLOWED = {
    "storage": ("interp.storage", *BASE),
    "metrics": ("interp.metrics",),
    # lm-numbers reads the world's tokenizer (which imports only interp.studies.world)
    "studies": ("interp.studies", "interp.storage", "interp.metrics", "interp.reports",
                "interp.loading.tokenizer", *BASE),
    "analysis": ("interp.analysis", "interp.studies", "interp.storage", "interp.metrics",
                 "interp.loading", *BASE),
    "loading": ("interp.loading", "interp.studies", "interp.storage", *BASE),
    "sweeps": ("interp.sweeps", "interp.studies", "interp.storage", "interp.metrics",
               "interp.reports", "interp.available_cores", *BASE),
    "reports": ("interp.reports", "interp.metrics", "interp.storage.store", "interp.storage.rundir",
                "interp.analysis.results", *BASE),
}


def interp_imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("interp")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.startswith("interp"):
            out |= {node.module if node.module != "interp" else f"interp.{a.name}"
                    for a in node.names}
    return out


MODULES = sorted(p for sub in ALLOWED for p in (PACKAGE / sub).glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_module_imports_only_its_allowed_layers(path):
    allowed = ALLOWED[path.parent.name]
    bad = sorted(m for m in interp_imports(path) if not m.startswith(allowed))
    assert bad == [], f"{path.parent.name}/{path.name} must not import {bad}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_module_says_what_it_owns(path):
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert doc, f"{path} has no module docstring"
    if path.name != "__init__.py":
        assert "Owns" in doc or "owns" in doc, f"{path} does not say what it owns"


def test_top_level_holds_only_the_entry_points():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "align.py", "audit.py", "cache.py", "cli.py", "demo.py",
                   "errors.py", "fingerprint.py", "study.py", "sweep.py", "validation.py"]
