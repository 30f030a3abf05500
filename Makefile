# `make demo` and `make test` create .venv on first use; nothing else needs installing.
PY := .venv/bin/python
export WANDB_MODE := disabled

.PHONY: demo test lint bench lab

.venv/.installed: pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	# the CPU build of torch that lies on disk; see pyproject.toml
	.venv/bin/pip install -q torch==2.13.0
	.venv/bin/pip install -q -e '.[dev]'
	touch $@

# the default study's independent stages on every core, one torch thread each (interp/__init__.py)
demo: .venv/.installed
	INTERP_WORKERS=$${INTERP_WORKERS:-auto} $(PY) -m interp.align
	INTERP_WORKERS=$${INTERP_WORKERS:-auto} $(PY) -m interp.fingerprint

test: .venv/.installed
	$(PY) -m pytest

lint: .venv/.installed
	$(PY) -m ruff check interp tests analyses benchmarks

bench: .venv/.installed
	$(PY) -m benchmarks

lab: .venv/.installed
	$(PY) -m jupyterlab notebooks
