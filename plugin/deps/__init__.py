"""MapScribe's runtime packages inside QGIS: are they there, and if not, install them.

QGIS's Python seldom has torch. The plugin still loads (nothing here or at plugin load imports
torch): :func:`missing_dependencies` says what is lacking without importing anything, and
:class:`DependencyPanel` explains it and installs the packages in the background into a folder
the plugin manages, with pip run by a real Python interpreter.

The rooms:

* :mod:`.managed`: the managed folder, putting it on ``sys.path``, what is missing (QGIS core);
* :mod:`.panel`: the panel (the two choices with their sizes, the log, progress in MB) and
  :mod:`.install_task`, the QgsTask that installs (Qt);
* :mod:`.packages`, :mod:`.versions` (which versions serve which Python),
  :mod:`.interpreter`, :mod:`.pip_commands`, :mod:`.download` (megabytes in so far),
  :mod:`.install`: the installation itself, plain Python (no Qt, no QGIS), tested from any
  interpreter.

This file imports nothing, so that the plain-Python rooms stay importable without QGIS.
"""
