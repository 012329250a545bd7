"""The QGIS adapter: gathers parameters, runs engine jobs in tasks, shows results.

It never computes: every default, rule and job is the engine's (``mapscribe.model``), reached
through its public surface. The rooms: plugin.py (what QGIS loads), ui.py (words, errors and
accessible widgets), engine_gate.py (dependencies and loading the engine), tasks.py (the
captioning task), map_inputs.py (plain values from QGIS objects), layers.py (captions layers),
progress_text.py, deps/ (installing torch), dock/, training/ and processing/.
"""
