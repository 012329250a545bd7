"""Before a run, without torch: the runtime captioning will use, the devices it offers (ONNX
Runtime's providers when torch is not installed), a model described in one line, and how long
captioning takes from the speeds make bench measured (never invented)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from locations import REPO
from mapscribe.model import estimate_caption_time, read_header
from mapscribe.model.jobs.speed import MEASURED_TILES_PER_S

DEFAULT_MODEL = REPO / "resources" / "default.mscap"


def test_estimates_come_from_the_measured_speeds():
    onnx = estimate_caption_time(360, "onnx", "cpu")
    assert onnx.runtime == "onnx" and onnx.device_kind == "cpu"
    assert onnx.seconds == pytest.approx(360 / MEASURED_TILES_PER_S[("onnx", "cpu")])
    torch = estimate_caption_time(360, "torch", "cpu")
    assert torch.seconds > onnx.seconds  # torch is the slower on a CPU, as measured
    # No speed was measured on a GPU: no estimate, rather than an invented one.
    gpu = estimate_caption_time(360, "torch", "cuda:0")
    assert gpu.device_kind == "gpu" and gpu.seconds is None and gpu.tiles_per_s is None
    assert "2-core CPU" in onnx.basis


def test_the_default_model_in_one_line_and_counts_as_integers():
    header = read_header(DEFAULT_MODEL)
    assert header.summary() == ("EfficientNet-Lite0 + LSTM, 1114 words, trained on UCM + RSICD "
                                "at ~0.5 m; RSICD test BLEU-4 0.45")
    card = header.describe()
    assert "images 210, beam 3" in card and "images 1094, beam 3" in card
    assert ".000" not in card.split("ucm-captions test:")[1]


_WITHOUT_TORCH = """
import json, sys
sys.modules["torch"] = None  # torch cannot be imported here
from mapscribe.model import available_devices, caption_runtime, estimate_caption_time
devices = available_devices()
print(json.dumps({"runtime": caption_runtime(), "devices": [d.key for d in devices],
                  "estimate": estimate_caption_time(10).runtime,
                  "torch": sys.modules.get("torch") is not None}))
"""


def test_without_torch_devices_come_from_onnx_runtime():
    done = subprocess.run([sys.executable, "-c", _WITHOUT_TORCH], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["runtime"] == "onnx" and seen["estimate"] == "onnx" and not seen["torch"]
    assert seen["devices"][0] == "auto" and seen["devices"][-1] == "cpu"
