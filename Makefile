# `make test` and `make demo` create .venv and install the requirements on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo venv benchmark clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements-dev.txt
	$(PY) -c "import torch, torchvision, cv2; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'opencv', cv2.__version__)"
	$(PY) -c "from wsol.metrics.component_tree import warm_up; warm_up()"  # compile and cache the evaluator's passes once
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile

demo: $(STAMP)
	PYTHON=$(PY) bash scripts/demo.sh

benchmark: $(STAMP)
	$(PY) scripts/benchmark_evaluator.py

clean:
	rm -rf $(VENV) .pytest_cache
