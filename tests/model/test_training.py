"""Training on real RSICD images: the network learns (overfits a small subset), batched beam
search equals the plain reference on real images, resume continues exactly, lr_find."""

from __future__ import annotations

import pytest
import torch

from mapscribe.model.api import ImageCaptioner, prepare_data
from mapscribe.model.data.features import encode_records
from mapscribe.model.evaluation.scores import evaluate_captions
from mapscribe.model.nn.beam_search import beam_search
from mapscribe.model.nn.config import DecodingParams
from mapscribe.model.progress import Stage
from mapscribe.model.training.checkpoints import load_checkpoint
from reference_beam import reference_beam_search

# Each test trains on real images for a minute or more on 2 cores: left out by make test-fast.
pytestmark = pytest.mark.slow

SMALL_DECODER = dict(embed_size=96, hidden_size=192, attention_size=96, dropout=0.0)


@pytest.fixture(scope="module")
def rsicd_subset(tmp_path_factory, request):
    """24 RSICD train images (and 6 val) of different scenes, in a folder of their own."""
    import json

    from locations import require_shared

    source = require_shared("rsicd-subset")
    document = json.loads((source / "annotations.json").read_text())
    by_split = {"train": [], "val": []}
    seen_classes = set()
    for item in document["images"]:
        scene = item["filename"].rsplit("_", 1)[0]
        split = item["split"]
        if split in by_split and scene not in seen_classes and not scene[0].isdigit():
            if len(by_split[split]) < (24 if split == "train" else 6):
                by_split[split].append(item)
                seen_classes.add(scene)
    folder = tmp_path_factory.mktemp("rsicd-small")
    (folder / "images").mkdir()
    for item in by_split["train"] + by_split["val"]:
        (folder / "images" / item["filename"]).symlink_to(source / "images" / item["filename"])
    (folder / "annotations.json").write_text(json.dumps(
        {"images": by_split["train"] + by_split["val"]}))
    assert len(by_split["train"]) == 24
    return folder


@pytest.fixture(scope="module")
def overfit(rsicd_subset):
    """A captioner trained to memorise the 24 training images."""
    torch.manual_seed(0)
    data = prepare_data(rsicd_subset, min_word_count=1, batch_size=16)
    captioner = ImageCaptioner(data, backbone="efficientnet_lite0",
                               decoder_params=SMALL_DECODER, device="cpu")
    result = captioner.fit(epochs=40, lr=4e-3, early_stopping=False, feature_variants=1,
                           attention_regularisation=0.2)
    return data, captioner, result


def test_training_lowers_the_loss_and_overfits_the_training_images(overfit):
    data, captioner, result = overfit
    losses = [epoch.train_loss for epoch in result.history]
    assert losses[-1] < 0.35 * losses[0], losses
    assert all(epoch.cider_d is not None for epoch in result.history)  # decoded validation
    captions = captioner.predict_batch([r.image_path for r in data.train], beam_width=1)
    scores = evaluate_captions({r.filename: c.text for r, c in zip(data.train, captions)},
                               {r.filename: [" ".join(t) for t in r.tokens]
                                for r in data.train}, meteor=False)
    # 0.5 before beam search banned stutters: a half-memorised image's "many cars are are in
    # a parking lot lot" becomes "many cars are parked in a parking lot", but the stutters of
    # others ("a football football field field") become other words, scored a little lower.
    assert scores.bleu4 >= 0.45, scores


@pytest.mark.parametrize("beam_size", [1, 3, 5])
def test_batched_beam_search_equals_the_reference_on_real_images(overfit, beam_size):
    data, captioner, _ = overfit
    records = data.train[:6] + data.valid[:4]
    store = encode_records(captioner.captioner, records)
    features = store.batch(torch.arange(len(records)))
    params = DecodingParams(beam_size=beam_size, max_length=20)
    batched = beam_search(captioner.captioner.decoder, features, params)
    for index in range(len(records)):
        words, total, finished = reference_beam_search(captioner.captioner.decoder,
                                                       features[index:index + 1], params)
        assert batched.tokens[index, :int(batched.lengths[index])].tolist() == words
        assert float(batched.total_log_prob[index]) == pytest.approx(total, abs=1e-4)
        assert bool(batched.finished[index]) == finished


def test_resume_continues_exactly_where_the_run_stopped(rsicd_subset, tmp_path):
    data = prepare_data(rsicd_subset, min_word_count=1, batch_size=16)
    options = dict(early_stopping=False, feature_variants=2, seed=3)
    decoder = dict(SMALL_DECODER, dropout=0.3)  # dropout draws random numbers: RNG must resume

    torch.manual_seed(1)
    straight = ImageCaptioner(data, backbone="efficientnet_lite0", decoder_params=decoder,
                              device="cpu")
    straight.fit(epochs=3, lr=2e-3, checkpoint=tmp_path / "straight.pt", **options)

    torch.manual_seed(1)
    interrupted = ImageCaptioner(data, backbone="efficientnet_lite0", decoder_params=decoder,
                                 device="cpu")
    epochs_done = []
    result = interrupted.fit(epochs=3, lr=2e-3, checkpoint=tmp_path / "stopped.pt",
                             progress=lambda u: epochs_done.append(u) if u.message else None,
                             cancelled=lambda: len(epochs_done) >= 1, **options)
    assert result.stopped == "cancelled" and len(result.history) == 1
    assert load_checkpoint(tmp_path / "stopped.pt")["epoch"] == 1

    torch.manual_seed(99)  # a different start: everything must come from the checkpoint
    resumed = ImageCaptioner(data, backbone="efficientnet_lite0", decoder_params=decoder,
                             device="cpu")
    result = resumed.fit(epochs=3, lr=2e-3, checkpoint=tmp_path / "resumed.pt",
                         resume_from=tmp_path / "stopped.pt", **options)
    assert [h.epoch for h in result.history] == [1, 2, 3]
    expected = straight.captioner.decoder.state_dict()
    for name, tensor in resumed.captioner.decoder.state_dict().items():
        assert torch.allclose(tensor, expected[name], atol=1e-6), name
    assert [round(h.train_loss, 5) for h in result.history] == \
           [round(h.train_loss, 5) for h in straight.history]


def test_a_cancel_in_the_first_epoch_still_leaves_a_checkpoint(rsicd_subset, tmp_path):
    data = prepare_data(rsicd_subset, min_word_count=1, batch_size=16)
    captioner = ImageCaptioner(data, backbone="efficientnet_lite0",
                               decoder_params=SMALL_DECODER, device="cpu")
    updates = []
    result = captioner.fit(epochs=2, lr=1e-3, checkpoint=tmp_path / "c.pt",
                           feature_variants=1, progress=updates.append,
                           cancelled=lambda: any(u.stage == Stage.TRAINING
                                                 and u.values["epoch"] == 1 for u in updates))
    assert result.stopped == "cancelled" and result.history == []
    assert load_checkpoint(tmp_path / "c.pt")["epoch"] == 0


def test_lr_find_suggests_a_rate_and_changes_nothing(rsicd_subset):
    data = prepare_data(rsicd_subset, min_word_count=1, batch_size=8)
    captioner = ImageCaptioner(data, backbone="efficientnet_lite0",
                               decoder_params=SMALL_DECODER, device="cpu")
    before = {k: v.clone() for k, v in captioner.captioner.decoder.state_dict().items()}
    suggested = captioner.lr_find()
    assert 1e-5 < suggested < 0.3
    curve = captioner.lr_find_result
    assert len(curve.learning_rates) >= 20
    assert min(curve.losses) < curve.losses[0]  # the loss fell somewhere along the sweep
    for name, tensor in captioner.captioner.decoder.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    figure = curve.plot()
    assert figure.axes[0].get_xscale() == "log"
