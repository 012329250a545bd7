"""The settings that describe a captioning network: plain data, no torch.

A model file's header holds these, so reading them (to show what a model is, or to size tiles)
needs neither torch nor the weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Dict, List, Optional, Tuple

from ..data.text import Vocabulary
from ..errors import ParameterError

# The encoders a captioner can use (nn.backbones.BACKBONES describes each; a test keeps the two
# equal). "auto" picks the best whose ImageNet weights are available offline.
BACKBONE_NAMES = ("resnet18", "resnet34", "resnet50", "resnet101", "mobilenet_v3_large",
                  "efficientnet_b0", "convnext_tiny", "efficientnet_lite0")


@dataclass
class DecoderParams:
    """The decoder's shape and training behaviour, with arcgis.learn's ``decoder_params`` names.

    ``teacher_forcing`` is the probability of feeding the reference word at each training step;
    below 1 the decoder is fed its own previous prediction otherwise (scheduled sampling).
    ``pretrained_emb`` is a path to word vectors (fastText ``.vec`` or GloVe text), or
    None/False.
    """

    embed_size: int = 256
    hidden_size: int = 512
    attention_size: int = 256
    teacher_forcing: float = 1.0
    dropout: float = 0.5
    pretrained_emb: Optional[str] = None
    context_size: int = 512          # encoder features are projected to this width; 0 = not

    def __post_init__(self) -> None:
        if self.pretrained_emb is False or self.pretrained_emb == "":
            self.pretrained_emb = None
        for name in ("embed_size", "hidden_size", "attention_size", "context_size"):
            value = getattr(self, name)
            minimum = 0 if name == "context_size" else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ParameterError(f"decoder_params['{name}'] must be a positive whole number, "
                                     f"not {value!r}")
        if not 0.0 <= float(self.teacher_forcing) <= 1.0:
            raise ParameterError(f"decoder_params['teacher_forcing'] must be a probability in "
                                 f"[0, 1], not {self.teacher_forcing!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ParameterError(f"decoder_params['dropout'] must be in [0, 1), not "
                             f"{self.dropout!r}")

    @classmethod
    def from_dict(cls, values: Optional[Dict]) -> "DecoderParams":
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ParameterError(f"unknown decoder_params {unknown}; the known ones are "
                                 f"{sorted(known)}")
        return cls(**values)

    def to_dict(self) -> Dict:
        return asdict(self)


@dataclass
class CaptionerConfig:
    """The architecture, as stored in a model file's header."""

    backbone: str = "auto"
    grid_size: int = 7
    input_size: int = 224
    mean: Tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: Tuple[float, float, float] = (0.229, 0.224, 0.225)
    feature_size: int = 0             # encoder channels; filled in when the encoder is built
    max_words: int = 30               # training captions are cut to this many words
    decoder: DecoderParams = field(default_factory=DecoderParams)
    themes: Tuple[str, ...] = ()      # the theme head's themes (data.themes); () = no head

    @property
    def image_input(self):
        """The :class:`~.caption_dataset.ImageInput` that prepares images for this network."""
        from ..data.datasets import ImageInput

        return ImageInput(self.input_size)

    def to_dict(self) -> Dict:
        values = asdict(self)
        values["mean"], values["std"] = list(self.mean), list(self.std)
        values["themes"] = list(self.themes)
        return values

    @classmethod
    def from_dict(cls, values: Dict) -> "CaptionerConfig":
        values = dict(values)
        values["decoder"] = DecoderParams.from_dict(values.get("decoder"))
        values["mean"] = tuple(values.get("mean", cls.mean))
        values["std"] = tuple(values.get("std", cls.std))
        values["themes"] = tuple(values.get("themes") or ())
        return cls(**values)


@dataclass(frozen=True)
class DecodingParams:
    beam_size: int = 3
    max_length: int = 20          # tokens generated at most, <end> included
    length_penalty: float = 1.0   # 0: raw total log-probability; 1: mean per token
    allow_unknown: bool = False   # let the decoder write <unk>
    return_attention: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.beam_size, int) or self.beam_size < 1:
            raise ParameterError(f"beam size must be a whole number ≥ 1, not {self.beam_size!r}")
        if not isinstance(self.max_length, int) or self.max_length < 1:
            raise ParameterError(f"maximum length must be a whole number ≥ 1, not "
                                 f"{self.max_length!r}")
        if self.length_penalty < 0:
            raise ParameterError(f"length penalty must be ≥ 0, not {self.length_penalty!r}")


def banned_word_ids(params: DecodingParams) -> List[int]:
    """The words a decoder never generates (torch's beam search and the numpy one share it)."""
    banned = [Vocabulary.pad_id, Vocabulary.start_id]
    if not params.allow_unknown:
        banned.append(Vocabulary.unk_id)
    return banned
