"""The MapScribe engine: data, networks, training, decoding, metrics, tiling and captioning.

Nothing in this package imports ``qgis``; it runs headless, from the command line and from Python.
"""
