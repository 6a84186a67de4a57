# The two set-up commands of the README:
#   make demo   — create .venv, install, and run the demo (class-wise and random forgetting on digits)
#   make test   — create .venv, install, and run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
# the CPU build that this project is tested with; override e.g. TORCH='torch==2.13.0' on a GPU machine
TORCH ?= torch==2.13.0
EXTRAS ?= dev,lm,report,tune,ray,accelerate,certs,diffusion,gan,tensorboard,mlflow

.PHONY: install demo test lint clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q '$(TORCH)'
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/unlearnkit demo

test: install
	$(VENV)/bin/python -m pytest -q

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) runs .pytest_cache
