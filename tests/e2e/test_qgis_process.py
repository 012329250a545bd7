"""The MapScribe algorithms from the shell: the real ``qgis_process.bin`` with the plugin enabled
in a throw-away profile, as a user would script them.

The plugin is found through QGIS_PLUGINPATH (a folder holding a link named ``mapscribe`` to the
repository root) and enabled with ``qgis_process.bin plugins enable mapscribe``. The venv's bin
comes first on PATH so that QGIS's Python sees the venv (torch). Debian's ``qgis_process``
wrapper script fails on 3.22 (``Command --noversioncheck not known!``), so the binary is called
directly.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from desktop import REPO, clean_environment, require

RGB_BYTE = REPO / "tests" / "data" / "RGB.byte.tif"
UCM_SAMPLE = REPO / "tests" / "data" / "ucm-sample"
RUN_TIMEOUT_S = 180

pytestmark = pytest.mark.timeout(RUN_TIMEOUT_S * 3)


class QgisProcess:
    """Runs ``qgis_process.bin`` with the plugin enabled in its own HOME and plugin folder."""

    def __init__(self, program: str, root: Path):
        self.program = program
        plugins = root / "plugins"
        plugins.mkdir()
        (plugins / "mapscribe").symlink_to(REPO, target_is_directory=True)
        # The venv's bin first, so that QGIS's Python uses the venv (torch); pytest-qgis's
        # settings folder and any other copy of the plugin do not leak in.
        self.env = clean_environment(root / "home", venv_python=True)
        self.env.pop("MAPSCRIBE_METEOR_JAR", None)  # a jar set in this shell must not leak in
        self.env.update({"QT_QPA_PLATFORM": "offscreen", "QGIS_PLUGINPATH": str(plugins)})

    def __call__(self, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([self.program, *args], capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S, env={**self.env, **(env or {})})

    def run(self, algorithm: str, env: dict | None = None, **parameters) -> dict:
        """``qgis_process.bin --json run mapscribe:<algorithm> -- NAME=value ...``; the JSON it
        prints, after checking that it succeeded."""
        done = self.run_raw(algorithm, env, **parameters)
        assert done.returncode == 0, f"{algorithm} failed:\n{done.stdout}\n{done.stderr}"
        return json.loads(done.stdout)

    def run_raw(self, algorithm: str, env: dict | None = None, **parameters):
        return self("--json", "run", f"mapscribe:{algorithm}", "--",
                    *[f"{name}={value}" for name, value in parameters.items()], env=env)


@pytest.fixture(scope="module")
def qgis_process(tmp_path_factory) -> QgisProcess:
    # Not a skip: the shell front door must be tested. make setup installs qgis.
    runner = QgisProcess(require("qgis_process.bin"), tmp_path_factory.mktemp("qgis-process"))
    enabled = runner("plugins", "enable", "mapscribe")
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    return runner


@pytest.fixture(scope="module")
def captioned(qgis_process, tiny_model_path, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("caption") / "grid.gpkg"
    return qgis_process.run("caption_raster", INPUT=RGB_BYTE, MODEL=tiny_model_path,
                            TILE_SIZE=400, TILE_SIZE_UNIT="pixels", BEAM=1, DEVICE="cpu",
                            OUTPUT=out)


def test_the_provider_lists_its_five_algorithms(qgis_process):
    done = qgis_process("--json", "list")
    assert done.returncode == 0, done.stderr
    provider = json.loads(done.stdout)["providers"]["mapscribe"]
    assert provider["name"] == "MapScribe"
    assert sorted(provider["algorithms"]) == [
        "mapscribe:caption_raster", "mapscribe:describe_captions", "mapscribe:evaluate_captioner",
        "mapscribe:export_captions", "mapscribe:train_captioner"]


def test_caption_raster(captioned):
    results = captioned["results"]
    # 791 × 718 px in 400-px tiles: 2 × 2; RGB.byte.tif has black nodata corners.
    assert results["TILES"] == 4 and results["STOPPED"] == "completed"
    assert results["CAPTIONED"] + results["NODATA"] == 4 and results["CAPTIONED"] >= 1
    path, layer = results["OUTPUT"].split("|layername=")
    assert layer == "captions" and Path(path).is_file()
    assert any(line.startswith("Done: ") for line in captioned["log"]["info"])

    from osgeo import ogr

    dataset = ogr.Open(path)
    try:
        features = list(dataset.GetLayerByName("captions"))
        assert len(features) == 4
        assert sum(bool(f.GetField("caption")) for f in features) == results["CAPTIONED"]
    finally:
        dataset = None


def test_export_captions_html(qgis_process, captioned, tmp_path):
    out = tmp_path / "report.html"
    done = qgis_process.run("export_captions", INPUT=captioned["results"]["OUTPUT"],
                            FORMAT="html", OUTPUT=out)
    assert done["results"] == {"OUTPUT": str(out), "TILES": 4}
    report = out.read_text()
    assert report.startswith("<!DOCTYPE html>") and "RGB.byte.tif" in report


def test_evaluate_captioner(qgis_process, tiny_model_path, tmp_path):
    done = qgis_process.run("evaluate_captioner", MODEL=tiny_model_path, DATASET=UCM_SAMPLE,
                            SPLIT="train", BEAM=1, COMPUTE_METEOR="false", DEVICE="cpu",
                            OUTPUT=tmp_path / "metrics.json")
    results = done["results"]
    assert results["IMAGES"] == 6 and results["METEOR"] is None
    assert 0 < results["BLEU_1"] <= 1 and results["CIDER_D"] > 0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["metrics"]["CIDEr-D"] == pytest.approx(results["CIDER_D"])
    assert any("CIDEr-D" in line for line in done["log"]["info"])  # the metric table


def test_train_captioner_two_epochs(qgis_process, tmp_path):
    out = tmp_path / "trained.mscap"
    # METEOR (a Java program, ~7 s per evaluation here) is left out through the engine's own
    # setting: a jar path that does not exist makes it report METEOR as unavailable.
    done = qgis_process.run(
        "train_captioner", env={"MAPSCRIBE_METEOR_JAR": str(tmp_path / "no-meteor.jar")},
        DATASET=UCM_SAMPLE, BACKBONE="efficientnet_lite0", EPOCHS=2, LR=0.005, BATCH_SIZE=4,
        EMBED_SIZE=16, HIDDEN_SIZE=32, ATTENTION_SIZE=16, CONTEXT_SIZE=32, DROPOUT=0,
        MIN_WORD_COUNT=1, FEATURE_VARIANTS=1, EVALUATE_TEST="false", DEVICE="cpu", OUTPUT=out)
    results = done["results"]
    assert results["OUTPUT"] == str(out) and results["STOPPED"] == "completed"
    assert results["BEST_EPOCH"] in (1, 2) and results["VAL_CIDER_D"] is not None
    assert results["TEST_CIDER_D"] is None  # EVALUATE_TEST=false
    # One line per epoch (the engine's EpochEnded, said once though it is logged and reported).
    epochs = [line for line in done["log"]["info"] if line.startswith("epoch ")]
    assert [line.split(",")[0] for line in epochs] == ["epoch 1/2", "epoch 2/2"]

    from mapscribe.model import checkpoint_path_for, read_header

    header = read_header(out)
    assert header.config.backbone == "efficientnet_lite0"
    assert header.config.decoder.embed_size == 16 and header.config.decoder.hidden_size == 32
    assert not checkpoint_path_for(out).exists()  # a finished run leaves no checkpoint


def test_bad_input_fails_with_a_clear_message(qgis_process, tmp_path):
    done = qgis_process.run_raw("caption_raster", INPUT=RGB_BYTE, MODEL=REPO / "README.md",
                                OUTPUT=tmp_path / "out.gpkg")
    assert done.returncode != 0
    assert "README.md: not a MapScribe model file" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "out.gpkg").exists()


def test_caption_raster_without_model_takes_the_default_model(qgis_process, tmp_path):
    """MODEL left out: the bundled default model (QGIS 3.22's qgis_process refused this with
    "mandatory parameters were not specified: MODEL"). Bands and device are enums."""
    out = tmp_path / "default.gpkg"
    done = qgis_process.run("caption_raster", INPUT=RGB_BYTE, TILE_SIZE=400,
                            TILE_SIZE_UNIT="pixels", BEAM=1, BANDS="3/2/1", DEVICE="cpu",
                            OUTPUT=out)
    results = done["results"]
    assert results["TILES"] == 4 and results["STOPPED"] == "completed"
    assert results["CAPTIONED"] >= 1
    from mapscribe.model import read_caption_layer_info

    run = read_caption_layer_info(out, "captions").run
    assert Path(run["model"]["path"]).name == "default.mscap", run["model"]
    bad = qgis_process.run_raw("caption_raster", INPUT=RGB_BYTE, DEVICE="tpu", OUTPUT=out)
    assert bad.returncode != 0 and "DEVICE" in bad.stdout + bad.stderr
