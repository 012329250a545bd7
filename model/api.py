"""The Python API, shaped like arcgis.learn's so that ArcGIS users feel at home::

    from mapscribe.model.api import prepare_data, ImageCaptioner

    data = prepare_data("RSICD", dataset_type="ImageCaptioning", batch_size=32, chip_size=224,
                        val_split_pct=0.1)
    captioner = ImageCaptioner(data, backbone="efficientnet_lite0",
                               decoder_params={"embed_size": 256, "hidden_size": 512,
                                               "attention_size": 256, "teacher_forcing": 1,
                                               "dropout": 0.5, "pretrained_emb": False})
    lr = captioner.lr_find()
    captioner.fit(epochs=20, lr=lr)
    captioner.bleu_score()            # {'bleu-1': …, 'bleu-4': …, 'BLEU': …}
    captioner.evaluate()              # BLEU-1..4, METEOR, ROUGE-L, CIDEr-D
    captioner.show_results(rows=4)    # a matplotlib figure
    captioner.predict("tile.jpg")     # 'many buildings and green trees are around a playground'
    captioner.save("rsicd.mscap")
    again = ImageCaptioner.from_model("rsicd.mscap")

Differences from arcgis.learn: ``save`` writes one safe ``.mscap`` file (no .emd + .pth pair),
``evaluate`` reports the COCO caption metrics besides BLEU, and every metric comes from decoded
captions (beam search), never from teacher forcing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from .data.images import load_rgb_image
from .data.text import Vocabulary
from .data.themes import themes_for
from .errors import ParameterError
from .nn.captioner import Caption, Captioner, new_captioner
from .nn.config import CaptionerConfig, DecodingParams
from .progress import ProgressCallback, never_cancelled
from .training.config import FitConfig, FitResult
from .training.fit import fit
from .training.lr_finder import find_learning_rate
from .training.prepared import CaptionData, prepare_data

if TYPE_CHECKING:
    from PIL import Image


log = logging.getLogger(__name__)

# The engine's decoding defaults (arcgis.learn calls the beam size beam_width).
BEAM, MAX_LENGTH = DecodingParams.beam_size, DecodingParams.max_length






ImageLike = Union[str, os.PathLike, "Image.Image", np.ndarray]


class ImageCaptioner:
    """Encoder + attention LSTM decoder ("Show, Attend and Tell"), trained on ``data``."""

    def __init__(self, data: Optional[CaptionData], backbone: str = CaptionerConfig.backbone,
                 decoder_params: Optional[Dict[str, Any]] = None, *,
                 grid_size: int = CaptionerConfig.grid_size, encoder_weights: str = "auto",
                 weights_path: Optional[str] = None,
                 freeze_encoder: bool = FitConfig.freeze_encoder, device: str = FitConfig.device,
                 ground_resolution_m: Optional[float] = None,
                 max_words: int = CaptionerConfig.max_words, theme_head: bool = True,
                 _captioner: Optional[Captioner] = None):
        from .nn.device import resolve_device

        self.data = data
        self.device = resolve_device(device)
        self.freeze_encoder = freeze_encoder
        self.ground_resolution_m = ground_resolution_m
        self.history: List = []
        self.training_summary: Dict[str, Any] = {}
        self.metrics: Dict[str, Dict[str, float]] = {}
        if _captioner is not None:
            self.captioner = _captioner.to(self.device)
            header = getattr(_captioner, "header", None)
            if header is not None:
                self.ground_resolution_m = header.ground_resolution_m
                self.training_summary = dict(header.training)
                self.metrics = dict(header.metrics)
            return
        if data is None:
            raise ParameterError("ImageCaptioner needs data from prepare_data() (or use "
                                 "ImageCaptioner.from_model to open a saved model)")
        built = new_captioner(data.vocabulary, backbone=backbone, chip_size=data.chip_size,
                              grid_size=grid_size, decoder_params=decoder_params,
                              max_words=max_words, encoder_weights=encoder_weights,
                              weights_path=weights_path,
                              themes=themes_for(data.train) if theme_head else ())
        self.captioner, self.encoder_info = built.captioner, built.encoder_weights
        if built.word_vector_coverage is not None:
            self.word_vector_coverage = built.word_vector_coverage
        self.captioner.to(self.device)

    # -- construction from a file -----------------------------------------------------------
    @classmethod
    def from_model(cls, path: Union[str, os.PathLike], data: Optional[CaptionData] = None,
                   device: str = FitConfig.device) -> "ImageCaptioner":
        from .modelfile.weights import load_model
        from .nn.device import resolve_device

        captioner = load_model(path, resolve_device(device))
        return cls(data, device=device, _captioner=captioner)

    @property
    def vocabulary(self) -> Vocabulary:
        return self.captioner.vocabulary

    def _require_data(self, what: str) -> CaptionData:
        if self.data is None:
            raise ParameterError(f"{what} needs data: pass prepare_data(...) to ImageCaptioner or "
                                 "from_model(path, data=...)")
        return self.data

    def _fit_config(self, **overrides) -> FitConfig:
        data = self._require_data("training")
        values: Dict[str, Any] = dict(batch_size=data.batch_size,
                                      freeze_encoder=self.freeze_encoder, device=str(self.device))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return FitConfig(**values)

    # -- training ---------------------------------------------------------------------------
    def lr_find(self, allow_plot: bool = False, **fit_options) -> float:
        """Suggest a learning rate (and draw the loss curve when ``allow_plot``)."""
        data = self._require_data("lr_find")
        config = self._fit_config(**fit_options)
        result = find_learning_rate(self.captioner, data.train, config, self.device)
        self.lr_find_result = result
        if allow_plot:
            result.plot()
        return result.suggested_lr

    def fit(self, epochs: int = 10, lr: Optional[float] = None, *,
            checkpoint: Union[bool, str, os.PathLike] = False,
            early_stopping: bool = True, resume_from: Optional[str] = None,
            progress: Optional[ProgressCallback] = None, cancelled=never_cancelled,
            **fit_options) -> FitResult:
        """Train for ``epochs``. Without ``lr`` the learning-rate finder picks one.

        ``checkpoint``: a path (or True for ``checkpoint.pt`` beside the dataset) where a
        resumable checkpoint is written after every epoch. Other :class:`FitConfig` fields
        (``batch_size``, ``feature_variants``, ``validation_beam`` …) may be given by name."""
        data = self._require_data("fit")
        if lr is None:
            lr = self.lr_find(**fit_options)
            log.info("lr_find suggests a learning rate of %.2e", lr)
        if checkpoint is True:
            checkpoint = data.folder.root / "checkpoint.pt"
        if not early_stopping:
            fit_options["early_stopping_patience"] = 0
        config = self._fit_config(epochs=epochs, lr=lr,
                                  checkpoint_path=str(checkpoint) if checkpoint else None,
                                  **fit_options)
        result = fit(self.captioner, data.train, data.valid, config, progress=progress,
                     cancelled=cancelled, resume_from=resume_from)
        self.history += result.history
        self.training_summary = {**data.summary(), "epochs": len(self.history),
                                 "best_epoch": result.best_epoch, "stopped": result.stopped,
                                 "encoder_weights": getattr(self.encoder_info, "source", None),
                                 "frozen_encoder": self.freeze_encoder, "lr": lr}
        if result.best_metrics:
            self.metrics["val"] = dict(result.best_metrics)
        return result

    # -- using the model --------------------------------------------------------------------
    def _image_tensor(self, image: ImageLike) -> torch.Tensor:
        from PIL import Image

        if isinstance(image, (str, os.PathLike)):
            image = load_rgb_image(image)
        elif isinstance(image, np.ndarray):
            array = image
            if array.ndim == 2:
                array = np.stack([array] * 3, axis=-1)
            if array.ndim != 3 or array.shape[2] not in (3, 4):
                raise ParameterError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4), not "
                                     f"{array.shape}")
            if array.dtype != np.uint8:
                raise ParameterError(f"an image array must be uint8, not {array.dtype}; scale "
                                     "it to 0..255 first")
            image = Image.fromarray(array[:, :, :3])
        elif isinstance(image, Image.Image):
            image = image.convert("RGB")
        else:
            raise TypeError(f"predict() takes a file path, a PIL image or a numpy array, not "
                            f"{type(image).__name__}")
        return self.captioner.image_input.to_tensor(image)

    def predict(self, image: ImageLike, beam_width: int = BEAM, max_length: int = MAX_LENGTH,
                return_attention: bool = False) -> Union[str, Caption]:
        """The caption of one image (a path, a PIL image or an array). With
        ``return_attention`` the whole :class:`Caption` (words, score, attention maps)."""
        captions = self.predict_batch([image], beam_width, max_length, return_attention)
        return captions[0] if return_attention else captions[0].text

    def predict_batch(self, images: Sequence[ImageLike], beam_width: int = BEAM,
                      max_length: int = MAX_LENGTH, return_attention: bool = False
                      ) -> List[Caption]:
        tensors = torch.stack([self._image_tensor(image) for image in images])
        decoding = DecodingParams(beam_size=beam_width, max_length=max_length,
                                  return_attention=return_attention)
        self.captioner.eval()
        return self.captioner.caption_images(tensors.to(self.device), decoding)

    def evaluate(self, split: str = "val", beam_width: int = BEAM, max_length: int = MAX_LENGTH,
                 meteor: bool = True, progress: Optional[ProgressCallback] = None,
                 cancelled=never_cancelled) -> Dict[str, Optional[float]]:
        """BLEU-1..4, METEOR, ROUGE-L and CIDEr-D on a split of the data (decoded captions)."""
        from .evaluation.evaluate import evaluate_records

        data = self._require_data("evaluate")
        evaluation = evaluate_records(self.captioner, data.split(split),
                                      DecodingParams(beam_size=beam_width, max_length=max_length),
                                      meteor=meteor, batch_size=data.batch_size,
                                      progress=progress, cancelled=cancelled)
        self.last_evaluation = evaluation
        scores = evaluation.scores.as_dict()
        self.metrics[split] = {k: v for k, v in scores.items() if v is not None}
        return scores

    def bleu_score(self, split: str = "val", beam_width: int = BEAM, max_length: int = MAX_LENGTH
                   ) -> Dict[str, float]:
        """arcgis.learn's keys: 'bleu-1' … 'bleu-4' and 'BLEU' (the corpus BLEU-4)."""
        scores = self.evaluate(split, beam_width, max_length, meteor=False)
        result = {f"bleu-{n}": float(scores[f"BLEU-{n}"] or 0.0) for n in range(1, 5)}
        result["BLEU"] = result["bleu-4"]
        return result

    def show_results(self, rows: int = 4, split: str = "val", beam_width: int = BEAM,
                     attention: bool = True):
        """A matplotlib figure: images with predicted and reference captions, and the
        attention heat map of each predicted word."""
        from .evaluation.show_results import results_figure

        data = self._require_data("show_results")
        records = data.split(split)[:rows]
        if not records:
            raise ParameterError(f"the {split} split has no images to show")
        captions = self.predict_batch([r.image_path for r in records], beam_width,
                                      return_attention=attention)
        return results_figure(records, captions, with_attention=attention)

    # -- saving -----------------------------------------------------------------------------
    def save(self, path: Union[str, os.PathLike], half: bool = False) -> Path:
        """Write the model file (weights + self-describing header); returns its path."""
        from .modelfile.header import MODEL_SUFFIX
        from .modelfile.weights import save_model

        path = Path(path)
        if path.suffix == "":
            path = path.with_suffix(MODEL_SUFFIX)
        save_model(self.captioner, path, half=half, ground_resolution_m=self.ground_resolution_m,
                   training=self.training_summary, metrics=self.metrics)
        log.info("model saved to %s", path)
        return path

__all__ = ["CaptionData", "ImageCaptioner", "prepare_data"]
