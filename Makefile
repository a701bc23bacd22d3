# make train: set up a virtual environment and train the book's MNIST CNN.
# make test:  set up the same environment and run the test suite.
# Both work on a fresh machine: the only prerequisite is python3 (>= 3.10).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The offline MNIST copy beside the checkout, when there is one; otherwise
# minicnn.datasets.mnist finds (or downloads) the data itself.
DATA_DIR ?= $(wildcard ../shared/datasets/mnist)
ifneq ($(DATA_DIR),)
export MINICNN_DATA_DIR ?= $(abspath $(DATA_DIR))
endif

.PHONY: train test train-mpi venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[fast,dev,h5,mpi]'
	$(PY) -m minicnn.warm_up   # compile and cache the CPU kernels now, not in the first step
	touch $@

train: venv
	$(PY) train_mnist.py $(ARGS)

# make train-mpi NP=2: train_mnist.py on NP MPI workers (minicnn.distributed), the same recipe
# (global batch 64); each worker gets cores/NP CPU threads. ARGS as for make train.
NP ?= 2
WORKER_THREADS ?= $(shell n=$$(( $$(nproc) / $(NP) )); echo $$(( n > 0 ? n : 1 )))
MPIRUN_FLAGS ?= --oversubscribe --bind-to none -x MINICNN_NUM_THREADS=$(WORKER_THREADS) $(if $(filter 0,$(shell id -u)),--allow-run-as-root)

train-mpi: venv
	$(VENV)/bin/mpirun -n $(NP) $(MPIRUN_FLAGS) $(PY) train_mnist.py --distributed $(ARGS)

test: venv
	$(PY) -m pytest -q -rs $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
