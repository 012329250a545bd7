"""The training dialog: train a captioner on a caption dataset folder inside QGIS.

* :mod:`.form`: the dialog's widgets only;
* :mod:`.request`: the form's values → the engine's TrainCaptionerParams (pure, no widget);
* :mod:`.data_check`: the engine's dataset check in a QgsTask, and its summary in words;
* :mod:`.task`: the engine's ``train_captioner`` in a QgsTask, its typed progress as signals;
* :mod:`.live_chart`: each epoch's losses and metrics, drawn and in a table;
* :mod:`.dialog`: :class:`~.dialog.TrainDialog`, which wires them.

Nothing is imported here: the dock imports :mod:`.dialog` when its Train button is pressed.
"""
