"""The MapScribe engine: data, networks, training, decoding, metrics, tiling and captioning.

Nothing in this package imports ``qgis``; it runs headless, from the command line and from
Python. This module is its public surface: the jobs with their parameter and result
dataclasses, the errors and the progress types, plus the few torch-free helpers a front door
needs before torch is installed (model headers, areas, dataset checks). Importing it never
imports torch; the jobs import it when they run.

Importing this module is cheap: each name is imported from its module the first time it is used
(PEP 562 ``__getattr__``), so the QGIS plugin and ``mapscribe --help`` start without numpy,
rasterio or GDAL until they need them. ``_HOMES`` says where each name lives.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Dict, Tuple

# Module (relative to this package) → the public names it provides.
_HOMES: Dict[str, Tuple[str, ...]] = {
    "atomic": ('write_bytes_atomic', 'write_text_atomic'),
    "data.folder": ('CaptionFolder', 'read_caption_folder'),
    "data.merge": ('merge_caption_folders',),
    "data.records": ('CaptionRecord', 'DatasetError', 'Problem', 'SPLITS'),
    "data.summary": ('FolderSummary', 'summarise'),
    "describe.describe": ('describe_captions',),
    "describe.schema": ('DescribeError', 'Description', 'Position', 'Region', 'TileCounts'),
    "describe.store": ('StoredOverview', 'read_overview'),
    "errors": ('MapScribeError', 'OutputExistsError', 'ParameterError'),
    "geo.areas": ('AreaOfInterest', 'BoundingBox', 'PolygonArea', 'WholeRaster'),
    "geo.http_fetch": ('NetworkParams',),
    "geo.read_plan": ('BandMapping',),
    "geo.sources": ('ImageSource', 'SourceError', 'redact_url'),
    "geo.tiling": ('OVERLAP_UNITS', 'TILE_SIZE_UNITS'),
    "geo.vector": ('read_polygon_file',),
    "jobs.caption": ('caption_raster',),
    "jobs.caption_params": ('CaptionRasterParams', 'CaptionRasterResult', 'TileCaption'),
    "jobs.caption_plan": ('preview_tiles', 'TilePreview'),
    "jobs.devices": ('available_devices', 'caption_runtime', 'DeviceChoice', 'RuntimeChoiceError'),
    "jobs.speed": ('estimate_caption_time', 'CaptionTimeEstimate'),
    "jobs.evaluate": ('evaluate_model', 'EvaluateModelParams', 'EvaluateModelResult', 'Prediction'),
    "jobs.train": (
        'train_captioner', 'TrainCaptionerParams', 'TrainCaptionerResult', 'training_history',
    ),
    "modelfile.header": ('MODEL_SUFFIX', 'ModelFileError', 'ModelHeader', 'read_header'),
    "nn.config": ('BACKBONE_NAMES', 'CaptionerConfig', 'DecoderParams', 'DecodingParams'),
    "output.exports": ('export_captions', 'EXPORT_FORMATS', 'ExportResult', 'format_from_suffix'),
    "output.geopackage": ('find_caption_layers', 'read_caption_layer_info'),
    "output.schema": ('CaptionLayerInfo', 'ExportError', 'GridFileError'),
    "progress": (
        'CANCELLED', 'COMPLETED', 'EARLY_STOPPING', 'EpochEnded', 'format_duration',
        'never_cancelled', 'ProgressCallback', 'ProgressUpdate', 'Stage',
    ),
    "training.paths": ('checkpoint_path_for',),
    "version": ('__version__',),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}

if TYPE_CHECKING:  # what static checkers and readers see
    from .atomic import write_bytes_atomic, write_text_atomic
    from .data.folder import CaptionFolder, read_caption_folder
    from .data.merge import merge_caption_folders
    from .data.records import SPLITS, CaptionRecord, DatasetError, Problem
    from .data.summary import FolderSummary, summarise
    from .describe.describe import describe_captions
    from .describe.schema import DescribeError, Description, Position, Region, TileCounts
    from .describe.store import StoredOverview, read_overview
    from .errors import MapScribeError, OutputExistsError, ParameterError
    from .geo.areas import AreaOfInterest, BoundingBox, PolygonArea, WholeRaster
    from .geo.http_fetch import NetworkParams
    from .geo.read_plan import BandMapping
    from .geo.sources import ImageSource, SourceError, redact_url
    from .geo.tiling import OVERLAP_UNITS, TILE_SIZE_UNITS
    from .geo.vector import read_polygon_file
    from .jobs.caption import caption_raster
    from .jobs.caption_params import CaptionRasterParams, CaptionRasterResult, TileCaption
    from .jobs.caption_plan import TilePreview, preview_tiles
    from .jobs.devices import DeviceChoice, RuntimeChoiceError, available_devices, caption_runtime
    from .jobs.evaluate import EvaluateModelParams, EvaluateModelResult, Prediction, evaluate_model
    from .jobs.speed import CaptionTimeEstimate, estimate_caption_time
    from .jobs.train import (
        TrainCaptionerParams,
        TrainCaptionerResult,
        train_captioner,
        training_history,
    )
    from .modelfile.header import MODEL_SUFFIX, ModelFileError, ModelHeader, read_header
    from .nn.config import BACKBONE_NAMES, CaptionerConfig, DecoderParams, DecodingParams
    from .output.exports import EXPORT_FORMATS, ExportResult, export_captions, format_from_suffix
    from .output.geopackage import find_caption_layers, read_caption_layer_info
    from .output.schema import CaptionLayerInfo, ExportError, GridFileError
    from .progress import (
        CANCELLED,
        COMPLETED,
        EARLY_STOPPING,
        EpochEnded,
        ProgressCallback,
        ProgressUpdate,
        Stage,
        format_duration,
        never_cancelled,
    )
    from .training.paths import checkpoint_path_for
    from .version import __version__


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_MODULE_OF))


__all__ = [
    # jobs
    "caption_raster", "CaptionRasterParams", "CaptionRasterResult", "TileCaption",
    "preview_tiles", "TilePreview",
    "train_captioner", "TrainCaptionerParams", "TrainCaptionerResult", "checkpoint_path_for",
    "training_history",
    "evaluate_model", "EvaluateModelParams", "EvaluateModelResult", "Prediction",
    "export_captions", "ExportResult", "EXPORT_FORMATS", "format_from_suffix",
    "available_devices", "DeviceChoice", "caption_runtime", "RuntimeChoiceError",
    "estimate_caption_time", "CaptionTimeEstimate",
    # inputs
    "AreaOfInterest", "WholeRaster", "BoundingBox", "PolygonArea", "read_polygon_file",
    "BandMapping", "DecoderParams", "DecodingParams", "CaptionerConfig", "BACKBONE_NAMES",
    "ImageSource", "NetworkParams", "redact_url",
    "TILE_SIZE_UNITS", "OVERLAP_UNITS", "SPLITS",
    # datasets and model files (no torch)
    "read_caption_folder", "CaptionFolder", "CaptionRecord", "Problem", "summarise",
    "FolderSummary", "merge_caption_folders",
    "read_header", "ModelHeader", "MODEL_SUFFIX",
    # captions layers
    "find_caption_layers", "read_caption_layer_info", "CaptionLayerInfo",
    # describing a captioned area: regions and the overview
    "describe_captions", "Description", "Region", "Position", "TileCounts", "read_overview",
    "StoredOverview",
    # files
    "write_text_atomic", "write_bytes_atomic", "__version__",
    # errors
    "MapScribeError", "ParameterError", "OutputExistsError", "DatasetError", "ModelFileError",
    "GridFileError", "ExportError", "DescribeError", "SourceError",
    # progress
    "ProgressUpdate", "ProgressCallback", "Stage", "EpochEnded", "COMPLETED", "EARLY_STOPPING",
    "CANCELLED", "never_cancelled", "format_duration",
]
