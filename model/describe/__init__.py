"""Describing a captioned area: each tile's theme, regions of one theme dissolved into polygons,
and a short overview read first (issue 12's DESCRIBING step).

- :mod:`.schema`: the dataclasses (:class:`~.schema.Region`, :class:`~.schema.Description`),
  the regions layer's fields, the metadata keys, :class:`~.schema.DescribeError`;
- :mod:`.tiles`: reading a captions layer's tiles (one level or a caption pyramid);
- :mod:`.grouping`: themes per tile, connected tiles of one theme, positions in words;
- :mod:`.geometry`: dissolving tiles with GEOS, areas on the ellipsoid;
- :mod:`.regions`: regions from tiles (each with its typical caption and its sentence);
- :mod:`.overview`: the overview's templates;
- :mod:`.store`: writing the regions layer and the overview into the GeoPackage, reading them;
- :mod:`.describe`: :func:`~.describe.describe_captions`, the one engine function.

No torch, no qgis.
"""
