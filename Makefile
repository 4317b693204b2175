# The two commands that matter: `make demo` and `make test`. Everything they need installs itself.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
SAM := .venv-sam/bin/sam
export PYTHONPATH := $(CURDIR):$(CURDIR)/layers/recsys

RATINGS ?= data/ml-100k
MODEL_URI ?= build/model-store
FN ?= RecommendFunction
EVENT ?= events/recommend.json

.PHONY: help venv data train demo test test-soak test-unit test-integration test-template test-e2e lint \
        invoke openapi bench build validate deploy publish-model clean

help:
	@echo "make demo    train on ML-100K, publish to a local S3, serve API + website"
	@echo "make test    install everything and run the whole test suite"
	@echo "make bench   ML-100K and ML-10M-shaped benchmarks -> bench/results.json, docs/BENCHMARKS.md"
	@echo "make data | train | invoke FN=.. EVENT=.. | openapi | lint | build | deploy | publish-model"

$(VENV)/.installed: requirements-dev.txt layers/recsys/requirements.txt training/requirements.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is needed (the Lambda runtime is python3.11)"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel setuptools cython
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

.venv-sam/.installed: requirements-sam.txt
	$(PYTHON) -m venv .venv-sam
	.venv-sam/bin/pip install --quiet -r requirements-sam.txt
	touch $@

venv: $(VENV)/.installed

data: $(VENV)/.installed
	$(PY) -m scripts.fetch_ml100k

train: data
	$(PY) -m training --ratings $(RATINGS) --model-uri $(MODEL_URI)

demo: data
	$(PY) -m scripts.localstack demo

# Reads the model store (or its latest.json) as it is; it never trains or publishes: `make train` does.
invoke: $(VENV)/.installed
	$(PY) -m scripts.localstack invoke $(FN) $(EVENT) --model-uri $(MODEL_URI)

openapi: $(VENV)/.installed
	$(PY) -m scripts.openapi

bench: $(VENV)/.installed data /usr/bin/wrk
	$(PY) -m bench.run

/usr/bin/wrk:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk

/usr/bin/chromium:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

test: $(VENV)/.installed .venv-sam/.installed /usr/bin/chromium data
	$(PY) -m pytest -m "not soak"

test-soak: $(VENV)/.installed data
	$(PY) -m pytest -m soak -s

test-unit: $(VENV)/.installed
	$(PY) -m pytest -m unit

test-integration: $(VENV)/.installed data
	$(PY) -m pytest -m integration

test-template: $(VENV)/.installed .venv-sam/.installed
	$(PY) -m pytest -m template

test-e2e: $(VENV)/.installed /usr/bin/chromium data
	$(PY) -m pytest -m e2e

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/cfn-lint template.yaml

build: .venv-sam/.installed
	$(SAM) build

validate: .venv-sam/.installed
	$(SAM) validate --lint

deploy: build $(VENV)/.installed
	$(SAM) deploy
	$(PY) -m scripts.deploy_site

publish-model: data
	$(PY) -m training --ratings $(RATINGS) --model-uri "$$($(PY) -m scripts.deploy_site --output ModelUri)" --keep 5

clean:
	rm -rf build .aws-sam test-artifacts frontend/config.js
