"""On a CUDA GPU: a mixed-precision training step, and beam search on the GPU agreeing with the
CPU. Skipped, saying so, where there is no CUDA GPU (CI has none)."""

from __future__ import annotations

import pytest
import torch

from locations import TEST_DATA
from mapscribe.model.api import ImageCaptioner, prepare_data
from mapscribe.model.data.features import encode_records
from mapscribe.model.modelfile.weights import load_model
from mapscribe.model.nn.beam_search import beam_search
from mapscribe.model.nn.config import DecodingParams

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA GPU here: the CUDA tests run where one is")


def test_mixed_precision_training_step_on_cuda():
    torch.manual_seed(0)
    data = prepare_data(TEST_DATA / "ucm-sample", min_word_count=1, batch_size=4)
    captioner = ImageCaptioner(data, backbone="efficientnet_lite0", device="cuda",
                               decoder_params=dict(embed_size=32, hidden_size=64,
                                                   attention_size=32, context_size=64))
    result = captioner.fit(epochs=2, lr=3e-3, early_stopping=False, feature_variants=2,
                           mixed_precision=True)
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert next(captioner.captioner.decoder.parameters()).device.type == "cuda"


def test_cuda_and_cpu_beam_search_agree(tiny_model_path):
    records = __import__("mapscribe.model.data.folder", fromlist=["x"]).read_caption_folder(
        TEST_DATA / "ucm-sample").records
    cpu = load_model(tiny_model_path, "cpu")
    gpu = load_model(tiny_model_path, "cuda")
    features = encode_records(cpu, records).batch(torch.arange(len(records)))
    params = DecodingParams(beam_size=3, max_length=20)
    on_cpu = beam_search(cpu.decoder, features, params)
    on_gpu = beam_search(gpu.decoder, features.cuda(), params)
    assert on_cpu.tokens.tolist() == on_gpu.tokens.cpu().tolist()
    assert torch.allclose(on_cpu.total_log_prob, on_gpu.total_log_prob.cpu(), atol=1e-3)
