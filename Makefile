# The two commands that matter: `make demo` and `make test`. Everything they need installs itself.
SHELL := /bin/bash
# The Lambda runtime is python3.13: the venvs use the same minor version. `python3.13` on PATH wins;
# otherwise a pyenv-installed 3.13 is used even when pyenv's global version is another one.
ifndef PYTHON
PYTHON := $(firstword $(foreach p,python3.13 $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13),\
  $(shell $(p) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1 && command -v $(p))))
endif
# The repository, wherever make runs from (sam build runs the build-* targets below from a scratch folder).
ROOT := $(patsubst %/,%,$(dir $(abspath $(firstword $(MAKEFILE_LIST)))))
VENV := .venv
# The stamps name the Python version, so that a venv of another version is rebuilt, not reused.
STAMP := .installed-py313
PY := $(VENV)/bin/python
SAM := .venv-sam/bin/sam
export PYTHONPATH := $(CURDIR):$(CURDIR)/layers/recsys

RATINGS ?= data/ml-100k
MODEL_URI ?= build/model-store
FN ?= RecommendFunction
EVENT ?= events/recommend.json
API ?= local
DOCKERD := /usr/sbin/dockerd
DEBOOTSTRAP := /usr/sbin/debootstrap
SAM_DEPS := .venv-sam/$(STAMP) $(DOCKERD) $(DEBOOTSTRAP)

.PHONY: help venv data train demo test test-soak test-unit test-integration test-template test-e2e test-sam lint \
        invoke openapi bench cost build validate deploy publish-model clean sam-image sam-invoke retrain event screenshots

help:
	@echo "make demo    train on ML-100K, publish to a local S3, serve API + website"
	@echo "make test    install everything and run the whole test suite"
	@echo "make bench   ML-100K and ML-10M-shaped benchmarks -> bench/results.json, docs/BENCHMARKS.md"
	@echo "make cost    a month's cost at 10k, 1M and 100M requests (bench figures, dated list prices) -> docs/OPERATIONS.md"
	@echo "make demo API=sam   the same, with the API served by sam local start-api (Docker)"
	@echo "make retrain   while make demo runs: retrain on the base ratings and the taste page's likes"
	@echo "make event [USER_ID=196 MOVIE=.. KIND=like|unlike]   while make demo runs: a signed event, picks before and after"
	@echo "make data | train | invoke FN=.. EVENT=.. | sam-image | sam-invoke FN=.. EVENT=.. | openapi | lint"
	@echo "make build | deploy | publish-model"

$(VENV)/$(STAMP): requirements-dev.txt layers/recsys/requirements.txt training/requirements.txt
	@test -n "$(PYTHON)" || { echo "Python 3.13 is needed (the Lambda runtime is python3.13)"; exit 1; }
	$(PYTHON) -m venv --clear $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel setuptools cython
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

.venv-sam/$(STAMP): requirements-sam.txt
	$(PYTHON) -m venv --clear .venv-sam
	.venv-sam/bin/pip install --quiet -r requirements-sam.txt
	touch $@

venv: $(VENV)/$(STAMP)

data: $(VENV)/$(STAMP)
	$(PY) -m scripts.fetch_ml100k

train: data
	$(PY) -m training --ratings $(RATINGS) --model-uri $(MODEL_URI)

demo: data $(if $(filter sam,$(API)),$(SAM_DEPS))
	$(PY) -m scripts.$(if $(filter sam,$(API)),samlocal,localstack) demo

# TrainFunction's handler against the running `make demo` (its moto, from build/demo.json): the visitors' likes
# of the taste page, the base ratings, the quality gate, then publish; the demo's API swaps within 5 s.
retrain: $(VENV)/$(STAMP)
	$(PY) -m scripts.localstack retrain

# One user's event (by default a like of their top pick), signed as the site's backend signs it, to the running
# `make demo`: their picks before and after
USER_ID ?= 196
MOVIE ?=
KIND ?= like
event: $(VENV)/$(STAMP)
	$(PY) -m scripts.localstack event --user $(USER_ID) $(if $(MOVIE),--movie $(MOVIE)) --kind $(KIND)

# Reads the model store (or its latest.json) as it is; it never trains or publishes: `make train` does.
invoke: $(VENV)/$(STAMP)
	$(PY) -m scripts.localstack invoke $(FN) $(EVENT) --model-uri $(MODEL_URI)

# The SAM CLI's own emulation (Docker): the image for the template's runtime, built without a registry.
sam-image: $(VENV)/$(STAMP) $(DOCKERD) $(DEBOOTSTRAP)
	$(PY) -m scripts.samlocal image

# Real `sam local invoke` against moto (in a container) holding the model of the last `make train`.
sam-invoke: $(VENV)/$(STAMP) $(SAM_DEPS)
	$(PY) -m scripts.samlocal invoke $(FN) $(EVENT) --model-uri $(MODEL_URI)

$(DOCKERD):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io

$(DEBOOTSTRAP):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap

# Every page at a phone's and a desktop's size, from the model of the last `make train`, into docs/screenshots/.
screenshots: $(VENV)/$(STAMP) /usr/bin/chromium
	@test -f $(MODEL_URI)/latest.json || $(MAKE) train
	$(PY) -m scripts.screenshots

openapi: $(VENV)/$(STAMP)
	$(PY) -m scripts.openapi

bench: $(VENV)/$(STAMP) .venv-sam/$(STAMP) data /usr/bin/wrk
	$(PY) -m bench.run

# A month's cost at 10k, 1M and 100M requests from bench/results.json and bench/aws_prices.json,
# written into docs/OPERATIONS.md
cost: $(VENV)/$(STAMP)
	$(PY) -m bench.cost

/usr/bin/wrk:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk

/usr/bin/chromium:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

test: $(VENV)/$(STAMP) $(SAM_DEPS) /usr/bin/chromium data
	$(PY) -m pytest -m "not soak" --durations=15

test-soak: $(VENV)/$(STAMP) data
	$(PY) -m pytest -m soak -s

test-unit: $(VENV)/$(STAMP)
	$(PY) -m pytest -m unit

test-integration: $(VENV)/$(STAMP) data
	$(PY) -m pytest -m integration

test-template: $(VENV)/$(STAMP) .venv-sam/$(STAMP)
	$(PY) -m pytest -m template

test-e2e: $(VENV)/$(STAMP) /usr/bin/chromium data
	$(PY) -m pytest -m e2e

test-sam: $(VENV)/$(STAMP) $(SAM_DEPS) data
	$(PY) -m pytest -m sam

lint: $(VENV)/$(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/cfn-lint template.yaml

# sam build finds the runtime's python3.13 on PATH: the SAM venv's comes first.
build: .venv-sam/$(STAMP)
	PATH=$(CURDIR)/.venv-sam/bin:$$PATH $(SAM) build

validate: .venv-sam/$(STAMP)
	$(SAM) validate --lint

deploy: build $(VENV)/$(STAMP)
	$(SAM) deploy
	$(PY) -m scripts.deploy_site

publish-model: data
	$(PY) -m training --ratings $(RATINGS) --model-uri "$$($(PY) -m scripts.deploy_site --output ModelUri)" --keep 5

clean:
	rm -rf build .aws-sam test-artifacts frontend/config.js

# What `sam build` runs (template.yaml: BuildMethod makefile, ContextPath "."), into $(ARTIFACTS_DIR):
# AWS runs the zips `sam deploy` makes, which date every file 1980-01-01, so a .pyc that checks its
# source's mtime would be stale at every cold start and recompiled, on a read-only /opt and
# /var/task, never kept. Compiled here with hash-based, unchecked .pyc instead: Python loads them
# whatever the dates (PEP 552). tests/template/test_shipped.py opens the packaged zips to check it.
LAMBDA_COMPILE = $(PYTHON) -m compileall -q -f -j 0 --invalidation-mode unchecked-hash

build-RecsysLayer:
	@test -n "$(PYTHON)" || { echo "Python 3.13 is needed (the Lambda runtime is python3.13)"; exit 1; }
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-compile \
	  -r "$(ROOT)/layers/recsys/requirements.txt" -t "$(ARTIFACTS_DIR)/python"
	cp -R "$(ROOT)/layers/recsys/recsys" "$(ARTIFACTS_DIR)/python/"
	$(LAMBDA_COMPILE) "$(ARTIFACTS_DIR)/python"

build-%Function:
	@test -n "$(PYTHON)" || { echo "Python 3.13 is needed (the Lambda runtime is python3.13)"; exit 1; }
	cp "$(ROOT)/functions/$(shell echo $* | tr '[:upper:]' '[:lower:]')/"*.py "$(ARTIFACTS_DIR)/"
	$(LAMBDA_COMPILE) "$(ARTIFACTS_DIR)"
