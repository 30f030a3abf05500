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

# the default study's independent stages on worker processes (interp/__init__.py): three, one
# per seed, so that on two cores no core idles while the last seed's chain runs; each gets
# cores // 3 threads (at least 1); interp.demo is interp.align then interp.fingerprint in one process
demo: .venv/.installed
	INTERP_WORKERS=$${INTERP_WORKERS:-3} $(PY) -m interp.demo

test: .venv/.installed
	$(PY) -m pytest

lint: .venv/.installed
	$(PY) -m ruff check interp tests analyses benchmarks

bench: .venv/.installed
	$(PY) -m benchmarks

lab: .venv/.installed
	$(PY) -m jupyterlab notebooks
