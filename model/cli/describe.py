"""``mapscribe describe``: the overview of a captioned grid, and its regions layer.

Prints the overview (at most five sentences, read first), then one line per region, and writes
the regions layer and the overview into the same GeoPackage (:func:`describe_captions`).
``mapscribe caption`` prints the same at the end of a run (unless ``--no-describe``).
"""

from __future__ import annotations

import argparse
import sys
from typing import List, TextIO

from .. import Description, describe_captions
from .common import EXIT_OK

# Regions listed one per line after the overview (the regions layer holds them all).
SHOWN_REGIONS = 10


def add_describe_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``describe`` on the ``mapscribe`` parser."""
    describe = commands.add_parser(
        "describe", help="the overview and the regions of a captioned grid",
        description="Read the captions of GPKG (made by `mapscribe caption`), tell each tile's "
                    "theme (the model's, or the caption's words for models without a theme "
                    "head), dissolve connected tiles of one theme into regions, and print an "
                    "overview of the area in at most five sentences. The regions are written "
                    "to a layer 'regions' of GPKG ('<layer>_regions' for another captions "
                    "layer), the overview to the captions layer's metadata.")
    describe.add_argument("gpkg", metavar="GPKG")
    describe.add_argument("--layer", metavar="NAME",
                          help="the captions layer (default: the only one in GPKG)")
    describe.set_defaults(handler=_describe)


def _describe(args: argparse.Namespace) -> int:
    description = describe_captions(args.gpkg, layer=args.layer)
    for line in description_lines(description):
        print(line)
    print_notes(description, "mapscribe describe", sys.stderr)
    return EXIT_OK


def description_lines(description: Description) -> List[str]:
    """What ``describe`` prints: the overview, then the regions, then where they were
    written."""
    lines = ["Overview:"] + [f"  {sentence}" for sentence in description.overview]
    if description.regions:
        lines.append(f"Regions ({len(description.regions)}, largest first):")
        for region in description.regions[:SHOWN_REGIONS]:
            lines.append(f"  {region.region_id}. {region.sentence}")
        if len(description.regions) > SHOWN_REGIONS:
            lines.append(f"  … and {len(description.regions) - SHOWN_REGIONS} more in the "
                         "regions layer.")
    if description.regions_layer:
        lines.append(f"Regions written to {description.path} (layer "
                     f"'{description.regions_layer}'); the overview is stored with layer "
                     f"'{description.layer}'.")
    return lines


def print_notes(description: Description, command: str, stream: TextIO) -> None:
    for note in description.notes:
        stream.write(f"{command}: note: {note}\n")
