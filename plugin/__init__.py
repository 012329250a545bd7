"""The QGIS adapter: gathers parameters, runs engine jobs in tasks, shows results. It never computes."""
