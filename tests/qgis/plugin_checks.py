"""Checks of the geocd QGIS plugin inside real QGIS; each prints one JSON object on stdout.

Run with the Python that imports ``qgis`` (Debian's /usr/bin/python3), offscreen, with a
throwaway profile::

    QT_QPA_PLATFORM=offscreen QGIS_CUSTOM_CONFIG_PATH=/tmp/profile \
        /usr/bin/python3 tests/qgis/plugin_checks.py '{"check": "gui", "plugins": "qgis_plugin", ...}'
"""

import json
import os
import sys
import time
import zipfile
from pathlib import Path

from qgis.core import (
    QgsApplication,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtWidgets import QMainWindow

ALGORITHM_ID = "geocd:detectchanges"
STARTED = []


class StubInterface:
    """The part of QgisInterface the plugin uses, recording the toolbar and menu entries."""

    def __init__(self):
        self.window = QMainWindow()
        self.toolbar = []
        self.raster_menu = []

    def mainWindow(self):
        return self.window

    def addToolBarIcon(self, action):
        self.toolbar.append(action)

    def removeToolBarIcon(self, action):
        self.toolbar.remove(action)

    def addPluginToRasterMenu(self, menu, action):
        self.raster_menu.append((menu, action))

    def removePluginRasterMenu(self, menu, action):
        self.raster_menu.remove((menu, action))


class RecordingFeedback(QgsProcessingFeedback):
    """Records progress and messages; cancels itself at the first progress report if asked to."""

    def __init__(self, cancel_on_progress=False):
        super().__init__()
        self.cancel_on_progress = cancel_on_progress
        self.progress = []
        self.messages = []
        self.commands = []
        self.canceled_at = None

    def setProgress(self, progress):
        super().setProgress(progress)
        self.progress.append(progress)
        if self.cancel_on_progress and self.canceled_at is None:
            self.canceled_at = time.monotonic()
            self.cancel()

    def pushInfo(self, info):
        super().pushInfo(info)
        self.messages.append(info)

    def pushCommandInfo(self, info):
        super().pushCommandInfo(info)
        self.commands.append(info)


def start_processing():
    """Initialise Processing (the Python plugin shipped with QGIS)."""
    sys.path.append(os.path.join(QgsApplication.pkgDataPath(), "python", "plugins"))
    from processing.core.Processing import Processing

    Processing.initialize()


def describe_layer(layer):
    """What a test needs to know about a loaded vector layer."""
    return {"name": layer.name(), "valid": layer.isValid(), "source": layer.source(),
            "features": layer.featureCount(), "renderer": layer.renderer().type() if layer.renderer() else None}


def toolbar_texts(iface):
    return [action.text() for action in iface.toolbar]


def check_gui(spec):
    """Load, register, open the dialog from the button, unload."""
    import processing
    import geocd_qgis
    from processing.core.ProcessingConfig import ProcessingConfig

    iface = StubInterface()
    plugin = geocd_qgis.classFactory(iface)
    plugin.initGui()
    registry = QgsApplication.processingRegistry()
    algorithm = registry.algorithmById(ALGORITHM_ID)
    result = {
        "toolbar": toolbar_texts(iface), "raster_menu": [menu for menu, _ in iface.raster_menu],
        "registered": algorithm is not None, "display_name": algorithm.displayName(),
        "parameters": [p.name() for p in algorithm.parameterDefinitions()],
        "temporary_output": algorithm.parameterDefinition("OUTPUT").generateTemporaryDestination(),
        "setting": ProcessingConfig.settings.get("GEOCD_EXECUTABLE") is not None,
    }
    for path in spec["rasters"]:
        QgsProject.instance().addMapLayer(QgsRasterLayer(path, Path(path).stem))
    QgsProject.instance().addMapLayer(QgsVectorLayer("Point?crs=EPSG:32633", "points on top", "memory"))
    opened = []
    processing.execAlgorithmDialog = lambda alg_id, parameters: opened.append((alg_id, parameters))
    iface.toolbar[0].trigger()
    names = {layer.id(): layer.name() for layer in QgsProject.instance().mapLayers().values()}
    result["dialog"] = [[alg_id, {key: names[value] for key, value in parameters.items()}] for alg_id, parameters in opened]
    plugin.unload()
    result.update({
        "toolbar_after_unload": toolbar_texts(iface), "raster_menu_after_unload": len(iface.raster_menu),
        "registered_after_unload": registry.algorithmById(ALGORITHM_ID) is not None,
        "provider_after_unload": registry.providerById("geocd") is not None,
        "setting_after_unload": ProcessingConfig.settings.get("GEOCD_EXECUTABLE") is not None,
    })
    return result


def algorithm_parameters(spec):
    parameters = {"BEFORE": spec["before"], "AFTER": spec["after"], "OUTPUT": spec["output"]}
    if spec.get("model"):
        parameters["MODEL"] = spec["model"]
    if spec.get("only"):
        parameters["ONLY"] = spec["only"]
    if spec.get("zones"):
        parameters.update(ZONES=spec["zones"], ZONE_FIELD=spec.get("zone_field", ""))
    return parameters


def register_provider(executable=""):
    """Start the plugin as qgis_process does (kept alive, as qgis.utils.plugins keeps it); set its geocd path."""
    import geocd_qgis
    from processing.core.ProcessingConfig import ProcessingConfig

    plugin = geocd_qgis.classFactory(None)
    plugin.initProcessing()
    STARTED.append(plugin)
    ProcessingConfig.setSettingValue("GEOCD_EXECUTABLE", executable)


def check_run(spec):
    """processing.runAndLoadResults on a pair: the GeoPackage is written and loaded into the project."""
    import processing

    register_provider(spec.get("executable", ""))
    feedback = RecordingFeedback()
    results = processing.runAndLoadResults(ALGORITHM_ID, algorithm_parameters(spec), feedback=feedback)
    return {"results": results, "exists": Path(spec["output"]).is_file(),
            "layers": [describe_layer(layer) for layer in QgsProject.instance().mapLayers().values()],
            "progress": feedback.progress, "messages": feedback.messages, "command": " ".join(feedback.commands)}


def geocd_processes(marker):
    """Command lines of running processes that mention ``marker`` (a path unique to the calling test)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if entry.name.isdigit() and int(entry.name) != os.getpid() and marker in command:
            found.append(command)
    return found


def check_cancel(spec):
    """Cancel at the first progress report: the child stops and leaves no file."""
    import processing

    register_provider()
    feedback = RecordingFeedback(cancel_on_progress=True)
    error = None
    try:
        processing.run(ALGORITHM_ID, algorithm_parameters(spec), feedback=feedback)
    except QgsProcessingException as exception:
        error = str(exception)
    stopped = time.monotonic()
    output = Path(spec["output"])
    return {"error": error, "progress": feedback.progress,
            "stop_seconds": None if feedback.canceled_at is None else stopped - feedback.canceled_at,
            "files": sorted(p.name for p in output.parent.iterdir()),
            "processes": geocd_processes(str(output))}


def check_errors(spec):
    """Each bad case's QgsProcessingException message and whether an output appeared."""
    import processing

    from processing.core.ProcessingConfig import ProcessingConfig

    register_provider()
    outcomes = []
    for case in spec["cases"]:
        ProcessingConfig.setSettingValue("GEOCD_EXECUTABLE", case.get("executable", ""))
        os.environ.update(case.get("environ", {}))
        try:
            processing.run(ALGORITHM_ID, algorithm_parameters(case), feedback=RecordingFeedback())
            outcomes.append({"error": None})
        except QgsProcessingException as exception:
            outcomes.append({"error": str(exception), "exists": Path(case["output"]).exists()})
    return {"outcomes": outcomes}


def check_install(spec):
    """Unzip the plugin into a fresh profile and start it the way QGIS does (qgis.utils)."""
    import qgis.utils

    plugins = Path(spec["profile"]) / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(spec["zip"]) as archive:
        archive.extractall(plugins)
    sys.path.insert(0, str(plugins))
    qgis.utils.plugin_paths = [str(plugins)]
    qgis.utils.updateAvailablePlugins()
    iface = StubInterface()
    qgis.utils.iface = iface
    loaded = qgis.utils.loadPlugin("geocd_qgis") and qgis.utils.startPlugin("geocd_qgis")
    registry = QgsApplication.processingRegistry()
    result = {
        "available": "geocd_qgis" in qgis.utils.available_plugins,
        "metadata_name": qgis.utils.pluginMetadata("geocd_qgis", "name"),
        "loaded": bool(loaded), "module": sys.modules["geocd_qgis"].__file__,
        "registered": registry.algorithmById(ALGORITHM_ID) is not None, "toolbar": toolbar_texts(iface),
    }
    result["unloaded"] = qgis.utils.unloadPlugin("geocd_qgis")
    result["registered_after_unload"] = registry.algorithmById(ALGORITHM_ID) is not None
    result["toolbar_after_unload"] = toolbar_texts(iface)
    return result


CHECKS = {"gui": check_gui, "run": check_run, "cancel": check_cancel, "errors": check_errors, "install": check_install}


def main(checks=None):
    """Start QGIS and Processing, run the check named in the JSON spec (argv[1]) from ``checks`` (default: CHECKS)."""
    spec = json.loads(sys.argv[1])
    if spec.get("plugins"):
        sys.path.insert(0, spec["plugins"])
    app = QgsApplication([], True)
    app.initQgis()
    start_processing()
    result = (checks or CHECKS)[spec["check"]](spec)
    print(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
