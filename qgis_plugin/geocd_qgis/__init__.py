"""geocd QGIS plugin: semantic change detection by running the ``geocd`` command line."""


def classFactory(iface):  # noqa: N802 - QGIS's entry-point name
    """Create the plugin; ``iface`` is None under qgis_process."""
    from .plugin import GeocdPlugin

    return GeocdPlugin(iface)
