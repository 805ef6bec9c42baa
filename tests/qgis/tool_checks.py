"""Checks of the plugin's "Install geocd" and "Diagnostics" algorithms and of the toolbar button without
geocd, inside real QGIS; run like plugin_checks.py (same JSON spec, one JSON object printed)."""

import os
import sys
from pathlib import Path

from qgis.core import QgsApplication, QgsProcessingException

sys.path.insert(0, str(Path(__file__).parent))

from plugin_checks import RecordingFeedback, StubInterface, main, register_provider  # noqa: E402


class ConsoleFeedback(RecordingFeedback):
    """Also records console lines (the installer's log) and progress texts."""

    def __init__(self):
        super().__init__()
        self.console = []
        self.texts = []

    def pushConsoleInfo(self, info):
        super().pushConsoleInfo(info)
        self.console.append(info)

    def setProgressText(self, text):
        super().setProgressText(text)
        self.texts.append(text)


def check_install(spec):
    """The provider's algorithms; "Install geocd" from a wheelhouse; the executable setting it leaves."""
    import processing
    from processing.core.ProcessingConfig import ProcessingConfig

    register_provider("")
    provider = QgsApplication.processingRegistry().providerById("geocd")
    install = QgsApplication.processingRegistry().algorithmById("geocd:installgeocd")
    logged = []
    QgsApplication.messageLog().messageReceived.connect(lambda message, tag, level: logged.append((tag, message)))
    feedback = ConsoleFeedback()
    results = processing.run("geocd:installgeocd", {"WHEELHOUSE": spec["wheelhouse"], "ENVIRONMENT": spec["environment"]},
                             feedback=feedback)
    QgsApplication.processEvents()
    return {"algorithms": sorted(a.id() for a in provider.algorithms()),
            "parameters": [p.name() for p in install.parameterDefinitions()],
            "default_environment": install.parameterDefinition("ENVIRONMENT").defaultValue(),
            "settings_dir": QgsApplication.qgisSettingsDirPath(),
            "results": results, "setting": ProcessingConfig.getSetting("GEOCD_EXECUTABLE"),
            "console": feedback.console, "messages": feedback.messages, "progress": feedback.progress,
            "logged": [message for tag, message in logged if tag == "geocd"]}


def check_diagnostics(spec):
    """"Diagnostics" with the executable of the spec ("" : geocd on PATH); its report or error."""
    import processing

    register_provider(spec.get("executable", ""))
    if "path" in spec:
        os.environ["PATH"] = spec["path"]
    feedback = RecordingFeedback()
    try:
        results = processing.run("geocd:diagnostics", {}, feedback=feedback)
    except QgsProcessingException as exception:
        return {"error": str(exception)}
    return {"report": results["REPORT"], "messages": feedback.messages}


def check_button_without_geocd(spec):
    """With no geocd set nor on PATH, the toolbar button opens "Install geocd"."""
    import processing
    import geocd_qgis
    from processing.core.ProcessingConfig import ProcessingConfig

    os.environ["PATH"] = spec["path"]
    iface = StubInterface()
    plugin = geocd_qgis.classFactory(iface)
    plugin.initGui()
    ProcessingConfig.setSettingValue("GEOCD_EXECUTABLE", "")
    opened = []
    processing.execAlgorithmDialog = lambda alg_id, parameters: opened.append(alg_id)
    iface.toolbar[0].trigger()
    plugin.unload()
    return {"opened": opened}


CHECKS = {"install": check_install, "diagnostics": check_diagnostics, "button_without_geocd": check_button_without_geocd}

if __name__ == "__main__":
    main(CHECKS)
