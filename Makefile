# Two commands on a fresh clone: `make repro` (the pipeline) and `make test` (the suite).
# Both create .venv and install the pinned dependencies first (once; again when they change).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1

.PHONY: setup repro test test-fast browser bench compare sweep recipe recipe-scratch recipe-adam recipe-table mlflow-ui clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

repro: setup
	dvc repro
	dvc metrics show --precision 10
	@python -m cnn_denoise.summary

test: setup browser
	python -m pytest -n auto --dist worksteal --durations=10

# The offline-plot test renders the page in headless Chromium; install it where we can (root
# with apt, as in CI), otherwise that one test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "chromium could not be installed: the browser test will skip"

test-fast: setup
	python -m pytest -m "not slow"

mlflow-ui: setup
	mlflow ui --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///$(CURDIR)/mlflow.db

clean:
	rm -rf $(VENV) .pytest_cache

bench: setup
	python bench/bench.py

compare: setup
	python -m cnn_denoise.compare

# A documented sweep: filter lengths and widths, queued and run two at a time.
sweep: setup
	dvc exp run --queue -S 'model.taps=[20,20]'
	dvc exp run --queue -S 'model.taps=[80,80]'
	dvc exp run --queue -S 'model.features=[1,10,1]'
	dvc exp run --queue -S 'model.taps=[40,40,40]' -S 'model.features=[1,5,5,1]'
	dvc queue start -j 2
	@while dvc queue status | grep -qE "Running|Queued"; do sleep 10; done
	dvc queue status
	dvc exp show --md --drop '.*' --keep 'Experiment|^train\.l1$$|^test\.l1$$|test\.si_sdr_db|model\.taps|model\.features|baselines\.linear\.l1$$'

# The recipe that denoises (README): a [79, 1] CNN started as the least-squares filter, whose
# hidden tanh units learn a noise gate (full-batch L-BFGS on the SNR loss); ~6 min on 2 CPU cores.
# recipe-scratch: the same from the course's random init, to compare; table: recipe-table.
RECIPE = -S 'model.taps=[79,1]' -S 'model.features=[1,4,1]' -S model.last_activation=linear -S model.input_scale=1000 \
	-S train.optimizer=lbfgs -S train.loss=snr -S train.lr=1.0 -S train.batch_size=250 -S train.epochs=10
recipe: setup
	dvc exp run -n linear-gate $(RECIPE) -S train.init=linear

recipe-scratch: setup
	dvc exp run -n lbfgs-scratch $(RECIPE) -S train.init=xavier

# Adam on scaled signals from random weights (README's H100 row): ~25 min on 2 CPU cores.
recipe-adam: setup
	dvc exp run -n adam-scaled -S train.optimizer=adam -S train.lr=0.001 -S model.input_scale=1000 \
	  -S model.last_activation=linear -S train.epochs=1500

recipe-table: setup  # the experiments of HEAD, or of REV=<commit>
	dvc exp show --md --rev $(or $(REV),HEAD) --drop '.*' --keep 'Experiment|^test\.l1$$|^test\.si_sdr_db$$|^test\.stoi$$|^baselines\.linear\.(l1|si_sdr_db)$$|model\.taps|train\.(optimizer|init|loss)$$'

