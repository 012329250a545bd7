"""The plugin's load/unload life cycle against pytest-qgis's QGIS interface.

pytest-qgis gives a real QgsApplication, a real QMainWindow and the real Processing registry,
but its ``QgisInterface`` is a stub: ``addToolBar`` makes a real QToolBar, while
``addDockWidget``/``removeDockWidget`` do nothing and methods it lacks (``addPluginToRasterMenu``,
``removePluginRasterMenu``) are MagicMocks that only record their calls. So these tests check
what is real here (the action, toolbar, dock and provider objects the plugin creates and
destroys, and the dock toggling) and, for the Raster menu, only that every entry the plugin
asks for is taken back with the same arguments. What the real QGIS menus, docks and toolbars
do is checked in the real desktop by tests/e2e/test_desktop.py.
"""

from __future__ import annotations

import pytest
from pytest_qgis.utils import process_events
from qgis.core import QgsApplication
from qgis.gui import QgsDockWidget
from qgis.PyQt.QtWidgets import QAction, QToolBar

import mapscribe
from mapscribe.plugin.plugin import MapScribePlugin

PROVIDER_ID = "mapscribe"


def _mapscribe_objects(main_window) -> dict[str, list]:
    """Every MapScribe object under the main window, by kind (deleted ones are gone)."""
    return {
        "actions": main_window.findChildren(QAction, "mapscribeAction"),
        "toolbars": main_window.findChildren(QToolBar, "MapScribeToolbar"),
        "docks": main_window.findChildren(QgsDockWidget, "MapScribeDock"),
    }


def _registered_provider():
    return QgsApplication.processingRegistry().providerById(PROVIDER_ID)


@pytest.fixture
def iface(qgis_iface, qgis_parent):
    """The stub interface with its main window shown (so dock visibility is real) and a fresh
    record of the menu calls; fails loudly if an earlier test left MapScribe objects behind."""
    qgis_iface.newProject()  # also clears the stub's recorded MagicMock calls
    qgis_parent.show()
    process_events()
    assert _mapscribe_objects(qgis_parent) == {"actions": [], "toolbars": [], "docks": []}
    assert _registered_provider() is None
    yield qgis_iface
    qgis_parent.hide()


def _assert_loaded_once(iface) -> QAction:
    found = _mapscribe_objects(iface.mainWindow())
    assert {kind: len(objects) for kind, objects in found.items()} == {
        "actions": 1, "toolbars": 1, "docks": 1}, found
    (action,), (toolbar,), (dock,) = found["actions"], found["toolbars"], found["docks"]
    assert action.text() == "MapScribe"
    assert action.isCheckable()
    assert not action.icon().isNull(), "resources/icon.svg did not load as the action's icon"
    assert toolbar.actions() == [action]
    assert dock.windowTitle() == "MapScribe"
    assert dock.accessibleName() and dock.accessibleDescription()
    assert dock.isHidden(), "the dock must stay closed until the user opens it"
    provider = _registered_provider()
    assert provider is not None and provider.name() == "MapScribe"
    assert not provider.icon().isNull()
    return action


def _assert_nothing_left(iface) -> None:
    process_events()  # deleteLater() takes effect here, as it would in QGIS's event loop
    assert _mapscribe_objects(iface.mainWindow()) == {"actions": [], "toolbars": [], "docks": []}
    assert _registered_provider() is None


def test_init_gui_adds_one_of_each_and_unload_removes_them(iface):
    plugin = mapscribe.classFactory(iface)  # the way QGIS creates it
    assert isinstance(plugin, MapScribePlugin)
    plugin.initGui()
    try:
        action = _assert_loaded_once(iface)
        train = iface.mainWindow().findChild(QAction, "mapscribeTrainAction")
        assert train is not None and train.text() == "Train captioner…"
        assert [c.args for c in iface.addPluginToRasterMenu.call_args_list] == \
            [("MapScribe", action), ("MapScribe", train)]
    finally:
        plugin.unload()
    assert [c.args for c in iface.removePluginRasterMenu.call_args_list] == \
        [("MapScribe", train), ("MapScribe", action)]
    _assert_nothing_left(iface)


def test_the_action_toggles_the_dock_and_follows_it(iface):
    plugin = MapScribePlugin(iface)
    plugin.initGui()
    try:
        action, dock = plugin.action, plugin.dock
        action.trigger()
        assert dock.isVisible() and action.isChecked()
        action.trigger()
        assert not dock.isVisible() and not action.isChecked()
        action.trigger()
        dock.close()  # the dock's own close button: the action must uncheck with it
        assert not action.isChecked()
    finally:
        plugin.unload()
    _assert_nothing_left(iface)


def test_load_unload_twice_leaves_nothing_behind(iface):
    """QGIS's plugin reload: a new plugin object each time, initGui then unload."""
    added, removed = [], []
    for _ in range(3):  # the first load and two reloads
        plugin = mapscribe.classFactory(iface)
        plugin.initGui()
        plugin.initProcessing()  # QGIS may call it too; it must not register a second provider
        added.append(_assert_loaded_once(iface))
        plugin.unload()
        removed.append(plugin)
        _assert_nothing_left(iface)
    menu_adds = [call.args for call in iface.addPluginToRasterMenu.call_args_list]
    menu_removes = [call.args for call in iface.removePluginRasterMenu.call_args_list]
    assert len(menu_adds) == 6 and set(menu_adds) == set(menu_removes)
    assert len(menu_removes) == 6


def test_processing_only_start_needs_no_interface(caplog):
    """qgis_process creates the plugin with iface=None and calls only initProcessing."""
    assert _registered_provider() is None
    plugin = MapScribePlugin(None)
    with caplog.at_level("WARNING", logger="mapscribe"):
        plugin.initProcessing()
        plugin.initProcessing()  # a second call must not even try to register it again
    assert caplog.records == []
    try:
        provider = _registered_provider()
        assert provider is not None and provider is plugin.provider
        assert provider.longName().startswith("MapScribe")
    finally:
        plugin.unload()
    assert _registered_provider() is None


def test_a_provider_id_already_taken_is_reported_not_raised(caplog):
    first, second = MapScribePlugin(None), MapScribePlugin(None)
    first.initProcessing()
    try:
        with caplog.at_level("WARNING", logger="mapscribe.plugin.plugin"):
            second.initProcessing()
        assert second.provider is None
        assert "could not be registered" in caplog.text
        second.unload()  # must not remove the first plugin's provider
        assert _registered_provider() is first.provider
    finally:
        first.unload()
    assert _registered_provider() is None
