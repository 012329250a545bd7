"""`mapscribe train / evaluate / predict`, run as people run them (the console script)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from locations import MAPSCRIBE, TEST_DATA

SAMPLE = str(TEST_DATA / "ucm-sample")
# Every test starts the console script (torch, the model) a few times, two of them train: tens of
# seconds each on 2 cores, so make test-fast leaves this file out (make test runs it).
pytestmark = pytest.mark.slow

TINY_TRAINING = ["--backbone", "efficientnet_lite0", "--min-word-count", "1", "--batch-size",
                 "2", "--embed-size", "16", "--hidden-size", "32", "--attention-size", "16",
                 "--dropout", "0", "--feature-variants", "1", "--lr", "3e-3"]



def test_train_writes_a_model_and_refuses_to_overwrite(cli, tmp_path):
    out = tmp_path / "model.mscap"
    result = cli("train", SAMPLE, "--out", str(out), "--epochs", "2", *TINY_TRAINING)
    assert result.returncode == 0, result.stderr
    assert out.is_file() and f"Model written to {out}" in result.stdout
    assert "epoch 2/2, train loss" in result.stderr  # the metrics line of each epoch
    table = [line.split() for line in result.stdout.splitlines()]
    assert ["split", "BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L",
            "CIDEr-D"] in table
    assert any(row and row[0] == "test" and len(row) == 8 for row in table)
    assert not Path(str(out) + ".checkpoint.pt").exists()  # the default one is tidied away
    again = cli("train", SAMPLE, "--out", str(out), "--epochs", "1", *TINY_TRAINING)
    assert again.returncode == 1 and "already exists" in again.stderr
    assert "Traceback" not in again.stderr


def test_train_reports_bad_input_without_a_traceback(cli, tmp_path):
    result = cli("train", str(tmp_path), "--out", str(tmp_path / "m.mscap"))
    assert result.returncode == 1 and "missing images/ and annotations.json" in result.stderr
    result = cli("train", SAMPLE, "--out", str(tmp_path / "m.mscap"), "--backbone", "vgg99")
    assert result.returncode == 1 and "vgg99" in result.stderr and "resnet50" in result.stderr
    result = cli("train", SAMPLE, "--out", str(tmp_path / "m.mscap"), "--epochs", "0")
    assert result.returncode == 1 and "epochs must be" in result.stderr
    for output in (result.stderr,):
        assert "Traceback" not in output


def test_ctrl_c_leaves_a_checkpoint_that_resume_finishes(cli, tmp_path):
    out = tmp_path / "model.mscap"
    process = subprocess.Popen([MAPSCRIBE, "train", SAMPLE, "--out", str(out), "--epochs",
                                "200", *TINY_TRAINING], stderr=subprocess.PIPE, text=True)
    seen = []
    deadline = time.monotonic() + 240
    for line in process.stderr:
        seen.append(line)
        if line.startswith("epoch 2/200,"):
            process.send_signal(signal.SIGINT)
            break
        assert time.monotonic() < deadline, "".join(seen)
    rest = process.stderr.read()
    assert process.wait(timeout=120) == 130, "".join(seen) + rest
    checkpoint = Path(str(out) + ".checkpoint.pt")
    assert checkpoint.is_file() and not out.exists()
    assert f"--resume {checkpoint}" in rest
    resumed = cli("train", SAMPLE, "--out", str(out), "--epochs", "4", "--resume",
                  str(checkpoint), *TINY_TRAINING)
    assert resumed.returncode == 0, resumed.stderr
    assert "epoch 4/4, train loss" in resumed.stderr and "epoch 1/4, train loss" not in \
        resumed.stderr
    assert out.is_file()


def test_evaluate_prints_a_table_and_json(cli, tiny_model_path, tmp_path):
    result = cli("evaluate", str(tiny_model_path), SAMPLE, "--split", "train", "--no-meteor")
    assert result.returncode == 0, result.stderr
    assert "train split of" in result.stdout and "6 images" in result.stdout
    predictions = tmp_path / "predictions.json"
    result = cli("evaluate", str(tiny_model_path), SAMPLE, "--split", "train", "--json",
                 "--predictions", str(predictions))
    report = json.loads(result.stdout)
    assert report["images"] == 6 and set(report["metrics"]) == {
        "BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D"}
    assert (report["metrics"]["METEOR"] is None) == (report["meteor_unavailable_reason"]
                                                     is not None)
    rows = json.loads(predictions.read_text())
    assert len(rows) == 6 and rows[0]["references"]


def test_evaluate_and_predict_refuse_bad_models(cli, tmp_path):
    bad = tmp_path / "bad.mscap"
    bad.write_bytes(b"not a model at all, just some text")
    for args in (("evaluate", str(bad), SAMPLE), ("predict", str(bad), SAMPLE + "/images/1.tif")):
        result = cli(*args)
        assert result.returncode == 1 and "not a MapScribe model file" in result.stderr
        assert "Traceback" not in result.stderr


def test_predict_prints_captions_and_draws_attention(cli, tiny_model_path, tmp_path):
    images = [SAMPLE + "/images/105.jpg", SAMPLE + "/images/1.tif"]
    result = cli("predict", str(tiny_model_path), *images, "--beam", "3", "--attention",
                 str(tmp_path / "att.png"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith(images[0] + "\t")
    assert (tmp_path / "att-105.png").stat().st_size > 10000
    assert (tmp_path / "att-1.png").is_file()
    single = cli("predict", str(tiny_model_path), images[0], "--json")
    assert json.loads(single.stdout)[0]["caption"] == lines[0].split("\t")[1]
    missing = cli("predict", str(tiny_model_path), "nowhere.jpg")
    assert missing.returncode == 1 and "no such image file: nowhere.jpg" in missing.stderr
