"""Distributed training under the real ``torchrun`` (two ranks, gloo, this machine's CPU).

Every run is a new process as people start it: ``torchrun --nproc-per-node 2 --standalone -m
mapscribe train …``, with the replica check on (MAPSCRIBE_CHECK_REPLICAS=1): after every
optimizer step the ranks compare their trained parameters and the run stops at a difference.
20 UCM train images, a 16/32-wide decoder and 2 cached versions of each image keep a run to
seconds; the fine-tuning run uses the committed 6-image sample.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from locations import MAPSCRIBE, UCM_SAMPLE, require_shared
from mapscribe.model import read_header
from mapscribe.model.training.checkpoints import load_checkpoint
from mapscribe.model.training.shares import (
    contiguous_share,
    epoch_steps,
    rank_share,
    scaled_learning_rates,
    steps_per_epoch,
)

TORCHRUN = Path(sys.executable).parent / "torchrun"
# One thread per process; the replica check after every step.
ENV = {**os.environ, "MAPSCRIBE_THREADS": "1", "MAPSCRIBE_CHECK_REPLICAS": "1"}
TRAIN_IMAGES, VAL_IMAGES, BATCH = 20, 4, 4
TINY = ("--backbone", "efficientnet_lite0", "--min-word-count", "1", "--batch-size", str(BATCH),
        "--embed-size", "16", "--hidden-size", "32", "--attention-size", "16", "--dropout", "0",
        "--lr", "3e-3", "--device", "cpu")


def _run(command, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([str(part) for part in command], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def _torchrun(*args):
    return _run([TORCHRUN, "--nproc-per-node", "2", "--standalone", "-m", "mapscribe", *args])


@pytest.fixture(scope="module")
def ucm_subset(tmp_path_factory) -> Path:
    """20 UCM-captions train images and 4 val images (no test split: nothing to score but val)."""
    source = require_shared("ucm-captions")
    images = json.loads((source / "annotations.json").read_text())["images"]
    train = [item for item in images if item["split"] == "train"][::80][:TRAIN_IMAGES]
    val = [item for item in images if item["split"] == "val"][::50][:VAL_IMAGES]
    folder = tmp_path_factory.mktemp("ucm-subset")
    (folder / "images").mkdir()
    for item in train + val:
        (folder / "images" / item["filename"]).symlink_to(source / "images" / item["filename"])
    (folder / "annotations.json").write_text(json.dumps({"images": train + val}))
    return folder


@pytest.fixture(scope="module")
def two_rank_run(ucm_subset, tmp_path_factory):
    """Two ranks, two epochs, cached features; the checkpoint kept for resuming."""
    folder = tmp_path_factory.mktemp("two-ranks")
    out, checkpoint = folder / "model.mscap", folder / "run.checkpoint.pt"
    done = _torchrun("train", ucm_subset, "--out", out, "--epochs", "2", "--checkpoint",
                     checkpoint, "--feature-variants", "2", "--feature-cache", folder / "cache",
                     *TINY)
    assert done.returncode == 0, done.stderr[-4000:]
    return done, out, checkpoint


def test_two_ranks_train_identical_replicas_and_the_loss_falls(two_rank_run):
    done, out, checkpoint = two_rank_run
    # Rank 0 alone speaks: one line per epoch, one summary.
    assert done.stderr.count("epoch 2/2, train loss") == 1, done.stderr[-4000:]
    assert done.stdout.count("Model written to") == 1
    ranks = read_header(out).training["distributed"]
    assert ranks["world_size"] == 2 and ranks["backend"] == "gloo"
    assert ranks["effective_batch"] == 2 * BATCH and ranks["lr_rule"] == "sqrt"
    assert ranks["lr_applied"] == pytest.approx(3e-3 * 2 ** 0.5)
    # The replica check ran after every step of both epochs and found the ranks identical.
    assert ranks["replica_checks"] == 2 * steps_per_epoch(TRAIN_IMAGES, BATCH, 2) == 6
    history = load_checkpoint(checkpoint)["history"]
    assert [epoch["epoch"] for epoch in history] == [1, 2]
    assert history[1]["train_loss"] < history[0]["train_loss"], history
    assert all(epoch["cider_d"] is not None for epoch in history)  # gathered validation


def test_the_model_of_two_ranks_loads_and_captions(two_rank_run, ucm_subset):
    _, out, _ = two_rank_run
    image = sorted((ucm_subset / "images").iterdir())[0]
    done = _run([MAPSCRIBE, "predict", out, image, "--runtime", "torch", "--json"])
    assert done.returncode == 0, done.stderr
    [caption] = json.loads(done.stdout)
    assert caption["caption"].strip() and caption["image"] == str(image)


def test_one_process_resumes_the_checkpoint_of_two_ranks(two_rank_run, ucm_subset, tmp_path):
    _, _, checkpoint = two_rank_run
    before = load_checkpoint(checkpoint)["history"]
    resumed_checkpoint = tmp_path / "resumed.pt"
    # The ranks shared out the encoding, and rank 0 kept the whole of it: one process finds it.
    cache = checkpoint.parent / "cache"
    assert len(list(cache.glob("features-*.pt"))) == 2  # train and val
    done = _run([MAPSCRIBE, "-v", "train", ucm_subset, "--out", tmp_path / "model.mscap",
                 "--epochs", "3", "--resume", checkpoint, "--checkpoint", resumed_checkpoint,
                 "--feature-variants", "2", "--feature-cache", cache, *TINY])
    assert done.returncode == 0, done.stderr[-4000:]
    assert "features for 20 images read from" in done.stderr
    assert "epoch 3/3, train loss" in done.stderr and "epoch 1/3, train loss" not in done.stderr
    history = load_checkpoint(resumed_checkpoint)["history"]
    assert [epoch["epoch"] for epoch in history] == [1, 2, 3]
    assert history[:2] == before  # the two ranks' epochs, kept as they were
    # It continued from the trained weights (and features of the real encoder), not afresh.
    assert history[2]["train_loss"] < history[0]["train_loss"], history
    header = read_header(tmp_path / "model.mscap")
    assert "distributed" not in header.training and header.training["epochs"] == 3


def test_fine_tuning_under_two_ranks(tmp_path):
    out = tmp_path / "model.mscap"
    # 64-px chips: the encoder runs forward and backward on every image of every step.
    done = _torchrun("train", UCM_SAMPLE, "--out", out, "--epochs", "1", "--fine-tune",
                     "--feature-variants", "1", "--chip-size", "64", "--grid-size", "2", *TINY)
    assert done.returncode == 0, done.stderr[-4000:]
    ranks = read_header(out).training["distributed"]
    # 6 images × 5 captions, 4 per rank and step: 4 steps, each checked.
    assert ranks["replica_checks"] == steps_per_epoch(30, BATCH, 2) == 4
    assert read_header(out).training["frozen_encoder"] is False


def test_bad_input_under_torchrun_is_said_once_by_rank_0(tmp_path):
    done = _torchrun("train", tmp_path, "--out", tmp_path / "m.mscap", *TINY)
    assert done.returncode != 0
    assert done.stderr.count("mapscribe train: error:") == 1, done.stderr
    assert "missing images/ and annotations.json" in done.stderr
    assert "/model/" not in "".join(line for line in done.stderr.splitlines(True)
                                    if line.lstrip().startswith("File "))
    assert not (tmp_path / "m.mscap").exists()


REPLICA_SCRIPT = """
import torch
from mapscribe.model.jobs.distributed import RankInfo
from mapscribe.model.training.distributed import (ReplicaCheck, ReplicaMismatchError,
                                                  TrainingGroup)

info = RankInfo.from_env()
with TrainingGroup(info, torch.device("cpu")) as group:
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    torch.nn.init.constant_(layer.weight, 0.5)
    check = ReplicaCheck(group, list(layer.named_parameters()))
    check(1, 1)
    with torch.no_grad():
        layer.bias[1] += 1e-7 * info.rank  # one weight a hair apart on rank 1
    try:
        check(1, 2)
    except ReplicaMismatchError as error:
        print(f"rank {info.rank} mismatch after {check.steps} checked: {error}")
"""


def test_the_replica_check_finds_a_weight_that_differs(tmp_path):
    script = tmp_path / "replicas.py"
    script.write_text(textwrap.dedent(REPLICA_SCRIPT))
    done = _run([TORCHRUN, "--nproc-per-node", "2", "--standalone", script])
    assert done.returncode == 0, done.stderr[-4000:]
    for rank, other in ((0, 1), (1, 0)):
        assert (f"rank {rank} mismatch after 1 checked: rank {rank}: after step 2 of epoch 1 "
                f"the trained parameters differ from rank {other}'s (first: bias)") \
            in done.stdout, done.stdout


# -- the sampler and the learning-rate rule, without torchrun ---------------------------------
@pytest.mark.parametrize("items, batch, world", [(20, 4, 2), (21, 4, 2), (17, 4, 4), (9, 1, 3),
                                                 (5, 8, 2), (100, 3, 7), (7, 4, 1)])
def test_each_rank_gets_a_disjoint_equal_share_covering_the_epoch(items, batch, world):
    order = list(range(items))
    random.Random(items).shuffle(order)
    shares = [rank_share(order, batch, rank, world) for rank in range(world)]
    # The same number of steps everywhere (DDP's all-reduces pair up), none of them empty.
    assert {len(share) for share in shares} == {steps_per_epoch(items, batch, world)}
    assert all(batch_ for share in shares for batch_ in share)
    everything = [item for share in shares for batch_ in share for item in batch_]
    assert sorted(everything) == sorted(order) and len(everything) == items  # disjoint, all
    for step in epoch_steps(order, batch, world):  # slices within a step differ by ≤ 1
        assert max(map(len, step)) - min(map(len, step)) <= 1
    if world == 1:  # one process: plain batches, as one process always had
        assert shares[0] == [order[i:i + batch] for i in range(0, items, batch)]


def test_the_share_follows_the_epochs_shuffle():
    def share(seed, epoch):
        rng = random.Random(seed)
        for _ in range(epoch):  # each epoch shuffles once, on every rank alike
            order = list(range(24))
            rng.shuffle(order)
        return rank_share(order, 4, 1, 2)

    assert share(0, 2) == share(0, 2)
    assert share(0, 2) != share(0, 3) and share(0, 2) != share(1, 2)


def test_contiguous_shares_and_too_few_items():
    assert [contiguous_share(10, rank, 3) for rank in range(3)] == [range(0, 3), range(3, 6),
                                                                     range(6, 10)]
    with pytest.raises(ValueError, match="cannot be shared among 3 ranks"):
        epoch_steps([0, 1], 4, 3)


def test_the_learning_rate_rule_for_the_effective_batch():
    one = scaled_learning_rates(1e-3, 1e-4, 32, 1)
    assert (one.decoder, one.encoder, one.effective_batch) == (1e-3, 1e-4, 32)
    four = scaled_learning_rates(1e-3, 1e-4, 32, 4)
    assert four.decoder == pytest.approx(2e-3) and four.encoder == pytest.approx(2e-4)
    assert four.effective_batch == 128
    assert "× √4" in four.describe(1e-3, 4)
