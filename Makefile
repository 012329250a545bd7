# MapScribe: every target works on a fresh Debian 12 machine and is idempotent.
#   make setup    Debian packages + .venv (system site packages, pinned pip installs, pip install -e .)
#   make test     lint, then the whole test suite: headless (offscreen Qt) and the QGIS desktop under Xvfb
#   make test-fast  the engine's tests only (tests/model, tests/test_*.py) without the slow ones
#   make lint     ruff over the whole tree and mypy over model/ (make typecheck: mypy alone)
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
	python3-venv python3-pip xvfb xauth zip chromium \
	qgis-server-bin qgis-server-wms qgis-server-wmts
# qgis-server-*: QGIS Server's development server (qgis_mapserver), a real WMS and WMTS on
# loopback for the tests of web image sources (tests/fixtures/qgis_server.py).
# The HTML report's accessibility test (tests/e2e/test_report_accessibility.py) runs axe-core in
# Debian's Chromium through playwright-core: both npm packages at the versions of
# $(NODE_DIR)/package-lock.json, installed into that folder (node_modules is not committed).
NODE_DIR := tests/e2e/node
NODE_STAMP := $(NODE_DIR)/node_modules/.mapscribe-installed

# Tests write into HOME (QGIS settings, pytest-qgis): give them a throw-away one.
TEST_HOME := $(CURDIR)/.test-home
TEST_ENV := HOME=$(TEST_HOME) QT_QPA_PLATFORM=offscreen PATH=$(CURDIR)/$(VENV)/bin:$$PATH \
	MAPSCRIBE_ARTIFACTS=$(CURDIR)/test-artifacts

MAPSCRIBE := $(VENV)/bin/mapscribe
SHARED_DATA := ../shared/data
DEFAULT_MODEL := resources/default.mscap
SAMPLE_RASTER := resources/sample/naip_north_dakota_5m.tif

.PHONY: setup test test-fast lint typecheck test-deps package demo bench bench-quality \
	default-model clean

setup: $(STAMP) $(NODE_STAMP)

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

# Chromium and npm are checked here too: a machine set up before they were needed has a
# $(STAMP) already. --ignore-scripts: no package may download anything (a browser) at install.
$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	@missing=""; dpkg -s chromium >/dev/null 2>&1 || missing="chromium"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages: $$missing"; \
		$(SUDO) apt-get update && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $$missing; \
	fi
	npm ci --prefix $(NODE_DIR) --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

test: setup lint
	@rm -rf $(TEST_HOME) && mkdir -p $(TEST_HOME) test-artifacts
	$(TEST_ENV) $(PY) -m pytest tests

# The engine's tests and the repository-wide checks (architecture, packaging) in a minute or two:
# no QGIS widgets, no desktop, none of the tests marked slow (training runs).
test-fast: setup
	@rm -rf $(TEST_HOME) && mkdir -p $(TEST_HOME) test-artifacts
	$(TEST_ENV) $(PY) -m pytest tests/model tests/test_*.py -m "not slow and not deps_install"

# ruff: rules and exceptions in pyproject.toml [tool.ruff]. mypy checks the engine as the package
# mapscribe.model, whatever this folder is called: the root is linked as mapscribe/ in a
# temporary folder (a folder name such as mapscribe-main is no package name).
lint: setup
	$(VENV)/bin/ruff check .
	@$(MAKE) --no-print-directory typecheck

typecheck: setup
	@link=$$(mktemp -d) && ln -s "$(CURDIR)" "$$link/mapscribe" && \
	(cd "$$link" && MYPYPATH="$$link" "$(CURDIR)/$(VENV)/bin/mypy" \
		--config-file "$(CURDIR)/pyproject.toml" --cache-dir "$(CURDIR)/.mypy_cache" \
		-p mapscribe.model); status=$$?; rm -rf "$$link"; exit $$status

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
PACKAGE_FILES := metadata.txt __init__.py __main__.py LICENSE README.md model plugin resources
# Not for the plugin: the 2.5 MB sample raster is for `make demo` (an extended regex on paths).
PACKAGE_EXCLUDE := ^resources/sample/
# The project's one home on the web: metadata.txt's homepage and repository are this, its
# tracker this/issues. make package writes them into the zip's metadata.txt (CONTRIBUTING.md);
# tests/test_packaging.py checks that metadata.txt agrees with the default.
REPOSITORY_URL ?= https://github.com/mapscribe/mapscribe
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
	| grep -zvE '(^|/)__pycache__/|\.py[co]$$' | grep -zvE '$(PACKAGE_EXCLUDE)' \
	| while IFS= read -r -d '' f; do if [ -f "$$f" ]; then printf '%s\0' "$$f"; fi; done \
	| xargs -0 --no-run-if-empty cp --parents -t $(PACKAGE_ROOT)/mapscribe
	@sed -i -e 's|^homepage=.*|homepage=$(REPOSITORY_URL)|' \
		-e 's|^repository=.*|repository=$(REPOSITORY_URL)|' \
		-e 's|^tracker=.*|tracker=$(REPOSITORY_URL)/issues|' $(PACKAGE_ROOT)/mapscribe/metadata.txt
	@# Sorted entries without extra attributes: the same tree gives the same file order.
	@cd $(PACKAGE_ROOT) && find mapscribe | LC_ALL=C sort | zip -qX -@ $(PACKAGE_ZIP)
	@bytes=$$(stat -c %s $(PACKAGE_ZIP)); echo "$(patsubst $(CURDIR)/%,%,$(PACKAGE_ZIP)):" \
		"$$(awk -v b=$$bytes 'BEGIN { printf "%.1f", b / 1e6 }') MB ($$bytes bytes;" \
		"plugins.qgis.org takes at most 25 MB)"

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
# versions, two of them seen ×2 (JPEG) and ×4 (blurred) coarser (resolution augmentation); the
# attention LSTM decoder and the scene-theme head; AdamW with warm-up and cosine decay; the epoch with the best
# validation CIDEr-D kept.
RECIPE := --backbone efficientnet_lite0 --grid-size 7 --chip-size 224 --epochs 20 --lr 2e-3 \
	--batch-size 32 --min-word-count 5 --feature-variants 4 --resolution-augmentation \
	--patience 5 --embed-size 256 --hidden-size 512 --attention-size 256 --dropout 0.5 \
	--teacher-forcing 1 --attention-regularisation 0.2 --seed 0

# The default model's data (10,414 training images) is four times the recipe's: two versions
# of each image (the second flipped and seen coarser) and at most 5 epochs make about as many
# steps (104,000 images) as the recipe took to its best epoch on UCM and the RSICD subset (8 ×
# 10,356), in about 3 hours on 2 cores (argparse keeps the last value of an option given twice).
DEFAULT_MODEL_RECIPE := $(RECIPE) --epochs 5 --feature-variants 2 --patience 2

# The default model trains on all of RSICD's train split (8,734 images), whose images cannot be
# shipped: RSICD_IMAGES names a folder holding them (RSICD_SOURCE says where to get them). Only
# the val images in ../shared/data are used to choose (UCM's, and the 258 of RSICD's there);
# the rest of RSICD's val split stays out, reserved for an independent check.
RSICD_IMAGES ?=
RSICD_SOURCE := the public repository github.com/Suyog-16/rsicd-image-captioning at commit \
	1d9e44db, folder data/RSICD_images/ (10,921 JPEG files)
RSICD_CAPTIONS := $(SHARED_DATA)/rsicd-subset/captions_all_images.json

# Train the bundled default model, reproducibly, on the train splits of UCM-captions and RSICD
# (selected on the val images above); score it on each dataset's complete test split and keep
# those figures in the model file's header; add its ONNX graphs (captioning without torch).
default-model: setup
	@if [ -z "$(RSICD_IMAGES)" ] || [ ! -d "$(RSICD_IMAGES)" ]; then \
		echo "make default-model needs RSICD's images: get them from $(RSICD_SOURCE)," >&2; \
		echo "e.g. git clone https://github.com/Suyog-16/rsicd-image-captioning &&" >&2; \
		echo "     git -C rsicd-image-captioning checkout 1d9e44db, then run" >&2; \
		echo "     make default-model RSICD_IMAGES=rsicd-image-captioning/data/RSICD_images" >&2; \
		exit 2; fi
	$(MAPSCRIBE) data assemble build/rsicd $(RSICD_CAPTIONS) --images $(RSICD_IMAGES) \
		--keep-val $(SHARED_DATA)/rsicd-subset --overwrite
	$(MAPSCRIBE) data merge build/default-model-data $(SHARED_DATA)/ucm-captions build/rsicd \
		--overwrite
	$(MAPSCRIBE) train build/default-model-data --out $(DEFAULT_MODEL) $(DEFAULT_MODEL_RECIPE) \
		--ground-resolution 0.5 --half --feature-cache build/feature-cache --overwrite
	$(MAPSCRIBE) evaluate $(DEFAULT_MODEL) $(SHARED_DATA)/ucm-captions --split test --record
	$(MAPSCRIBE) evaluate $(DEFAULT_MODEL) $(SHARED_DATA)/rsicd-subset --split test --record
	$(MAPSCRIBE) export-onnx $(DEFAULT_MODEL)

# Benchmarks: figures as ratios against baselines measured in the same run (not in make test).
bench: setup
	$(PY) tests/bench/bench_beam_search.py
	$(PY) tests/bench/bench_training.py
	$(PY) tests/bench/bench_captioning.py
	$(PY) tests/bench/bench_onnx.py
	$(PY) tests/bench/bench_web.py
	$(PY) tests/bench/bench_distributed.py
	$(PY) tests/bench/bench_pyramid.py

# The recipe's caption quality on UCM-captions and the RSICD subset (about half an hour on
# 2 cores with the features cached, 40 minutes without); then the default model's captions with
# ONNX Runtime against torch on both test splits (a few minutes).
bench-quality: setup
	$(PY) tests/bench/bench_quality.py $(SHARED_DATA)/ucm-captions $(SHARED_DATA)/rsicd-subset \
		-- $(RECIPE)
	$(PY) tests/bench/check_onnx_equality.py $(SHARED_DATA)/ucm-captions \
		$(SHARED_DATA)/rsicd-subset
	$(PY) tests/bench/bench_robustness.py $(DEFAULT_MODEL) $(SHARED_DATA)/ucm-captions \
		$(SHARED_DATA)/rsicd-subset

clean:
	rm -rf build dist $(TEST_HOME) test-artifacts .pytest_cache .qgis-settings
