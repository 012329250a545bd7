# MapScribe: every target works on a fresh Debian 12 machine and is idempotent.
#   make setup    Debian packages + .venv (system site packages, pinned pip installs, pip install -e .)
#   make test     the whole test suite: headless (offscreen Qt) and the real QGIS desktop under Xvfb
#   make demo     caption the bundled sample raster with the default model
#   make package  dist/mapscribe-<version>.zip for plugins.qgis.org / "Install from ZIP"
#   make bench    benchmarks (not part of make test)

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mapscribe-installed
VERSION := $(shell sed -n 's/^version=//p' metadata.txt)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := qgis python3-qgis python3-rasterio python3-gdal python3-matplotlib \
	python3-venv python3-pip xvfb xauth zip

# Tests write into HOME (QGIS settings, pytest-qgis): give them a throw-away one.
TEST_HOME := $(CURDIR)/.test-home
TEST_ENV := HOME=$(TEST_HOME) QT_QPA_PLATFORM=offscreen PATH=$(CURDIR)/$(VENV)/bin:$$PATH \
	MAPSCRIBE_ARTIFACTS=$(CURDIR)/test-artifacts

MAPSCRIBE := $(VENV)/bin/mapscribe
SHARED_DATA := ../shared/data
DEFAULT_MODEL := resources/default.mscap
SAMPLE_RASTER := resources/sample/naip_north_dakota_5m.tif

.PHONY: setup test test-deps package demo bench bench-quality default-model clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:$$missing"; \
		$(SUDO) apt-get update && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $$missing; \
	fi
	@test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	@touch $@

test: setup
	@rm -rf $(TEST_HOME) && mkdir -p $(TEST_HOME) test-artifacts
	$(TEST_ENV) $(PY) -m pytest tests

# QGIS started with a Python that lacks torch installs MapScribe's packages for real (the CUDA
# build, about 5 GB, into a temporary managed folder that is deleted afterwards) and then
# captions an image. A few minutes; not part of `make test`.
test-deps: setup
	@rm -rf $(TEST_HOME) && mkdir -p $(TEST_HOME) test-artifacts
	$(TEST_ENV) $(PY) -m pytest -m deps_install tests/e2e/test_deps_install.py

# The zip holds the runtime files only, under one folder mapscribe/ (what QGIS's "Install from
# ZIP" and plugins.qgis.org expect). In a git checkout the file list comes from git (tracked and
# new files, never ignored ones such as caches or build output); in an unpacked source archive,
# from find. Byte-code is dropped either way. DIST_DIR and PACKAGE_ROOT may be absolute paths
# (the packaging tests build into a temporary folder).
PACKAGE_FILES := metadata.txt __init__.py LICENSE README.md model plugin resources
DIST_DIR ?= dist
PACKAGE_ROOT ?= build/package
PACKAGE_ZIP := $(abspath $(DIST_DIR))/mapscribe-$(VERSION).zip

package:
	@test -n "$(VERSION)" || { echo "make package: no version= line in metadata.txt" >&2; exit 1; }
	@for f in $(PACKAGE_FILES); do test -e $$f || { echo "make package: $$f is missing" >&2; exit 1; }; done
	@command -v zip >/dev/null || { echo "make package: 'zip' is not installed (make setup installs it)" >&2; exit 1; }
	@rm -rf $(PACKAGE_ROOT) $(PACKAGE_ZIP) && mkdir -p $(PACKAGE_ROOT)/mapscribe $(DIST_DIR)
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		git ls-files -z --cached --others --exclude-standard -- $(PACKAGE_FILES); \
	else \
		find $(PACKAGE_FILES) -type f -print0; \
	fi \
	| grep -zvE '(^|/)__pycache__/|\.py[co]$$' \
	| while IFS= read -r -d '' f; do if [ -f "$$f" ]; then printf '%s\0' "$$f"; fi; done \
	| xargs -0 --no-run-if-empty cp --parents -t $(PACKAGE_ROOT)/mapscribe
	@# Sorted entries without extra attributes: the same tree gives the same file order.
	@cd $(PACKAGE_ROOT) && find mapscribe | LC_ALL=C sort | zip -qX -@ $(PACKAGE_ZIP)
	@echo "$(patsubst $(CURDIR)/%,%,$(PACKAGE_ZIP))"

# The main job on the bundled sample raster with the default model.
demo: setup
	@test -f $(DEFAULT_MODEL) || { echo "$(DEFAULT_MODEL) is missing: run make default-model"; exit 1; }
	@mkdir -p demo-output
	$(MAPSCRIBE) caption $(SAMPLE_RASTER) --model $(DEFAULT_MODEL) --out demo-output/grid.gpkg \
		--overwrite
	$(MAPSCRIBE) export demo-output/grid.gpkg --format html --out demo-output/report.html
	@echo
	@echo "Captioned grid: $(CURDIR)/demo-output/grid.gpkg (open it in QGIS)"
	@echo "Report:         $(CURDIR)/demo-output/report.html (readable with a screen reader)"

# The training recipe, measured in `make bench-quality` (README, "Caption quality"): the offline
# ImageNet-pretrained EfficientNet-Lite0, frozen, its features cached in 4 flipped/rotated
# versions; the attention LSTM decoder; AdamW with warm-up and cosine decay; the epoch with the
# best validation CIDEr-D kept. About 15–30 minutes per dataset on a 2-core CPU.
RECIPE := --backbone efficientnet_lite0 --grid-size 7 --chip-size 224 --epochs 20 --lr 2e-3 \
	--batch-size 32 --min-word-count 5 --feature-variants 4 --patience 5 \
	--embed-size 256 --hidden-size 512 --attention-size 256 --dropout 0.5 --teacher-forcing 1 \
	--attention-regularisation 0.2 --seed 0

# Train the bundled default model, reproducibly, on the train splits of UCM-captions and the
# RSICD subset in ../shared/data (selected on their val splits); then score it on each
# dataset's test split and keep those figures in the model file's header.
default-model: setup
	$(MAPSCRIBE) data merge build/default-model-data $(SHARED_DATA)/ucm-captions \
		$(SHARED_DATA)/rsicd-subset --overwrite
	$(MAPSCRIBE) train build/default-model-data --out $(DEFAULT_MODEL) $(RECIPE) \
		--ground-resolution 0.5 --half --feature-cache build/feature-cache --overwrite
	$(MAPSCRIBE) evaluate $(DEFAULT_MODEL) $(SHARED_DATA)/ucm-captions --split test --record
	$(MAPSCRIBE) evaluate $(DEFAULT_MODEL) $(SHARED_DATA)/rsicd-subset --split test --record

# Benchmarks: figures as ratios against baselines measured in the same run (not in make test).
bench: setup
	$(PY) tests/bench/bench_beam_search.py
	$(PY) tests/bench/bench_training.py
	$(PY) tests/bench/bench_captioning.py

# The recipe's caption quality on UCM-captions and the RSICD subset (about half an hour on
# 2 cores with the features cached, 40 minutes without).
bench-quality: setup
	$(PY) tests/bench/bench_quality.py $(SHARED_DATA)/ucm-captions $(SHARED_DATA)/rsicd-subset \
		-- $(RECIPE)

clean:
	rm -rf build dist $(TEST_HOME) test-artifacts .pytest_cache .qgis-settings
