"""Outputs: nothing MapScribe did not write is ever destroyed (points 1, 10 and 12 of issue 9).

`caption --overwrite` replaces only a MapScribe captions layer, inside a file it can open and
recognise; a file it cannot open (locked by another program, not a GeoPackage, a pipe) is left
as it is, with a message saying why. An output is compared with every input by identity (links
followed). Files get the umask's permissions.
"""

from __future__ import annotations

import os
import stat
import sys

import pytest

from locations import TEST_DATA
from mapscribe.model.atomic import write_text_atomic
from mapscribe.model.output.plan import plan_output
from mapscribe.model.output.schema import GridWriteError

RGB_BYTE = TEST_DATA / "RGB.byte.tif"


def _caption(run_cli, model, out, *extra, **options):
    return run_cli("caption", RGB_BYTE, "--model", model, "--out", out, "--tile-size", "200",
                   "--tile-size-unit", "pixels", "--beam", "1", *extra, **options)


# -- point 1: a GeoPackage another program holds open ----------------------------------------------
def test_overwrite_of_a_locked_geopackage_keeps_the_file_and_says_why(
        run_cli, tiny_model_path, captions_gpkg, holding_open, gpkg_layers):
    before = captions_gpkg.read_bytes()
    with holding_open(captions_gpkg, exclusive=True):
        result = _caption(run_cli, tiny_model_path, captions_gpkg, "--overwrite")
    assert result.returncode == 1
    assert "locked by another program" in result.stderr
    assert "never deletes a file it cannot open" in result.stderr
    # Nothing was deleted or rewritten: the user's other layer is still there.
    assert captions_gpkg.read_bytes() == before
    assert gpkg_layers(captions_gpkg) == ["captions", "notes"]


def test_overwrite_while_another_program_reads_the_file_fails_without_loss(
        tiny_model_path, captions_gpkg, holding_open, gpkg_layers):
    # QGIS reading the layer holds a shared lock: deleting the layer cannot be committed.
    from mapscribe.model.errors import MapScribeError
    from mapscribe.model.jobs.caption import CaptionRasterParams, caption_raster

    with holding_open(captions_gpkg, exclusive=False):
        with pytest.raises(MapScribeError, match="locked"):
            caption_raster(CaptionRasterParams(raster=str(RGB_BYTE), model=str(tiny_model_path),
                                               output=str(captions_gpkg), tile_size=200,
                                               tile_size_unit="pixels", beam_size=1,
                                               overwrite=True))
    assert gpkg_layers(captions_gpkg) == ["captions", "notes"]


def test_overwrite_replaces_only_the_captions_layer(run_cli, tiny_model_path, captions_gpkg,
                                                    gpkg_layers):
    before = set(gpkg_layers(captions_gpkg))
    result = _caption(run_cli, tiny_model_path, captions_gpkg, "--overwrite")
    assert result.returncode == 0, result.stderr
    # Every other layer stays (a run may add its own, such as regions of one theme).
    assert before <= set(gpkg_layers(captions_gpkg))
    from osgeo import ogr

    dataset = ogr.Open(str(captions_gpkg))
    assert dataset.GetLayerByName("notes").GetFeatureCount() == 1


def test_overwrite_never_deletes_a_file_that_is_not_a_geopackage(run_cli, tiny_model_path,
                                                                  tmp_path):
    precious = tmp_path / "thesis.gpkg"
    precious.write_bytes(b"my only copy of something else\n" * 100)
    result = _caption(run_cli, tiny_model_path, precious, "--overwrite")
    assert result.returncode == 1 and "is not a GeoPackage" in result.stderr
    assert precious.read_bytes() == b"my only copy of something else\n" * 100


def test_overwrite_never_replaces_a_layer_mapscribe_did_not_write(tiny_model_path,
                                                                  captions_gpkg):
    with pytest.raises(GridWriteError, match="MapScribe did not write.*not even with"):
        plan_output(captions_gpkg, "notes", overwrite=True)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_pipe_as_output_is_refused_without_blocking(run_cli, tiny_model_path, tmp_path):
    fifo = tmp_path / "pipe.gpkg"
    os.mkfifo(fifo)
    result = _caption(run_cli, tiny_model_path, fifo, "--overwrite", timeout=120)
    assert result.returncode == 1 and "not a regular file" in result.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


# -- point 10: outputs compared with inputs by identity --------------------------------------------
def test_output_that_is_the_model_file_is_refused(run_cli, tiny_model_path, tmp_path):
    model = tmp_path / "model.gpkg"  # a model file named like a GeoPackage
    model.write_bytes(tiny_model_path.read_bytes())
    before = model.read_bytes()
    result = _caption(run_cli, model, model, "--overwrite")
    assert result.returncode == 1 and "is the model file" in result.stderr
    assert model.read_bytes() == before


def test_output_linked_to_the_model_or_the_raster_is_refused(run_cli, tiny_model_path,
                                                             tmp_path):
    model = tmp_path / "model.mscap"
    model.write_bytes(tiny_model_path.read_bytes())
    link = tmp_path / "out.gpkg"
    link.symlink_to(model)
    result = _caption(run_cli, model, link, "--overwrite")
    assert result.returncode == 1 and "is the model file" in result.stderr
    assert model.read_bytes() == tiny_model_path.read_bytes()

    from osgeo import gdal

    raster = tmp_path / "scene.gpkg"
    gdal.Translate(str(raster), str(RGB_BYTE), format="GPKG")
    before = raster.read_bytes()
    hard = tmp_path / "hard.gpkg"
    os.link(raster, hard)
    for alias in (hard, tmp_path / "sub" / ".." / "scene.gpkg"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        result = run_cli("caption", raster, "--model", model, "--out", alias, "--tile-size",
                         "200", "--tile-size-unit", "pixels", "--overwrite")
        assert result.returncode == 1 and "is the raster being captioned" in result.stderr
    assert raster.read_bytes() == before


def test_export_over_its_own_geopackage_through_a_link_is_refused(run_cli, captions_gpkg,
                                                                  tmp_path):
    link = tmp_path / "report.html"
    link.symlink_to(captions_gpkg)
    before = captions_gpkg.read_bytes()
    result = run_cli("export", captions_gpkg, "--out", link, "--overwrite")
    assert result.returncode == 1 and "would replace the GeoPackage" in result.stderr
    assert captions_gpkg.read_bytes() == before


# -- point 12: permissions follow the umask --------------------------------------------------------
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_exports_and_models_get_the_umask_permissions(run_cli, captions_gpkg, tiny_model_path,
                                                      tmp_path):
    expected = 0o666 & ~_umask()
    out = tmp_path / "captions.csv"
    assert run_cli("export", captions_gpkg, "--out", out).returncode == 0
    assert stat.S_IMODE(os.stat(out).st_mode) == expected

    from mapscribe.model.modelfile.weights import load_model, save_model

    saved = tmp_path / "copy.mscap"
    save_model(load_model(tiny_model_path), saved)
    assert stat.S_IMODE(os.stat(saved).st_mode) == expected
    # Rewriting a file (evaluate --record does) keeps the permissions it had.
    shared = tmp_path / "shared.txt"
    shared.write_text("old")
    os.chmod(shared, 0o644)
    write_text_atomic(shared, "new")
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o644


def test_outputs_of_train_evaluate_and_predict_are_never_their_inputs(run_cli, tiny_model_path,
                                                                      tmp_path):
    import shutil

    from locations import UCM_SAMPLE

    dataset = tmp_path / "dataset"
    shutil.copytree(UCM_SAMPLE, dataset)
    annotations = (dataset / "annotations.json").read_bytes()
    model = tmp_path / "model.mscap"
    model.write_bytes(tiny_model_path.read_bytes())
    image = next((dataset / "images").glob("*.jpg"))
    picture = image.read_bytes()

    trained = run_cli("train", dataset, "--out", dataset / "annotations.json", "--overwrite",
                      "--epochs", "1")
    assert trained.returncode == 1 and "is the dataset's annotations" in trained.stderr
    evaluated = run_cli("evaluate", model, dataset, "--predictions", model)
    assert evaluated.returncode == 1 and "is the model file" in evaluated.stderr
    predicted = run_cli("predict", model, image, "--attention", image)
    assert predicted.returncode == 1 and "is the image" in predicted.stderr
    unwritable = run_cli("predict", model, image, "--attention", tmp_path / "maps.xyz")
    assert unwritable.returncode == 1 and "cannot draw maps as '.xyz'" in unwritable.stderr
    assert (dataset / "annotations.json").read_bytes() == annotations
    assert model.read_bytes() == tiny_model_path.read_bytes() and image.read_bytes() == picture


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root may write anywhere")
def test_unwritable_targets_fail_before_the_work(run_cli, tiny_model_path, tmp_path):
    from locations import UCM_SAMPLE

    shelf = tmp_path / "read-only"
    shelf.mkdir()
    model = shelf / "model.mscap"
    model.write_bytes(tiny_model_path.read_bytes())
    shelf.chmod(0o555)
    try:
        recorded = run_cli("evaluate", model, UCM_SAMPLE, "--split", "test", "--record")
        assert recorded.returncode == 1 and "is not writable" in recorded.stderr
        predictions = run_cli("evaluate", tiny_model_path, UCM_SAMPLE, "--predictions",
                              shelf / "predictions.json")
        assert predictions.returncode == 1 and "is not writable" in predictions.stderr
    finally:
        shelf.chmod(0o755)


def test_impossible_targets_fail_before_the_work(run_cli, tiny_model_path, tmp_path):
    """(Root may write anywhere, so the test above is skipped as root; these fail for all.)"""
    from locations import UCM_SAMPLE

    a_file = tmp_path / "notes.txt"
    a_file.write_text("a file, not a folder")
    for target, message in ((a_file / "predictions.json", "is a file, not a folder"),
                            (tmp_path / ("p" * 300 + ".json"), "file name too long"),
                            (tmp_path, "is a folder")):
        result = run_cli("evaluate", tiny_model_path, UCM_SAMPLE, "--split", "test",
                         "--predictions", target)
        assert result.returncode == 1 and message in result.stderr, result.stderr
        assert "BLEU" not in result.stdout  # nothing was evaluated
    image = next((UCM_SAMPLE / "images").glob("*.jpg"))
    result = run_cli("predict", tiny_model_path, image, "--attention", a_file / "maps.png")
    assert result.returncode == 1 and "is a file, not a folder" in result.stderr
