"""Processing algorithm "Detect changes": runs ``geocd predict`` on two raster layers."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QUrl

from .compat import NUMBER_DOUBLE, VECTOR_POLYGON
from .runner import find_executable, run_geocd
from .settings import configured_executable
from .styling import style_on_load

HELP = (
    "Finds what changed, and into what, between a 'before' and an 'after' image of the same place, "
    "with the geocd command line (run out of process; install it with geocd > Install geocd, or set an installed "
    "geocd under Settings > Options > Processing > Providers > geocd).\n\n"
    "The 'after' image is warped onto the 'before' grid when they differ; only their overlap is processed. "
    "The result is a GeoPackage of change polygons (layer 'changes') with from/to land-cover classes, "
    "area and probabilities; it opens with its stored style.\n\n"
    "Model file: a geocd checkpoint (.safetensors); empty uses geocd's default model. "
    "TTA averages 6 flips/rotations (6x slower). "
    "Align dates: undo the global shift measured between the images (geocd warns of one above a pixel) before detecting. "
    "Only classes: keep only the changes from or to these land-cover classes, comma-separated "
    "(e.g. building, or building, low vegetation); empty keeps every change.\n\n"
    "Zones: a polygon layer (any CRS); the change polygons are cut at its zones and get their id (the zone id "
    "field, else the feature id) in field 'zone', and a table of the changed area per zone and from→to pair "
    "(m², ha; rows without a zone: the whole scene) is written beside the output as NAME_zones.csv and loaded."
)


class DetectChangesAlgorithm(QgsProcessingAlgorithm):
    """``geocd:detectchanges``: before/after rasters in, change polygons (GeoPackage) out."""

    BEFORE = "BEFORE"
    AFTER = "AFTER"
    MODEL = "MODEL"
    TTA = "TTA"
    ALIGN = "ALIGN"
    THRESHOLD = "THRESHOLD"
    MIN_AREA = "MIN_AREA"
    ONLY = "ONLY"
    ZONES = "ZONES"
    ZONE_FIELD = "ZONE_FIELD"
    OUTPUT = "OUTPUT"
    ZONES_TABLE = "ZONES_TABLE"

    def name(self) -> str:
        return "detectchanges"

    def displayName(self) -> str:
        return "Detect changes"

    def shortHelpString(self) -> str:
        return HELP

    def tags(self) -> list[str]:
        return ["change", "detection", "semantic", "land cover", "before", "after", "geocd"]

    def createInstance(self) -> "DetectChangesAlgorithm":
        return DetectChangesAlgorithm()

    def initAlgorithm(self, config: Any = None) -> None:
        """Declare the inputs and the GeoPackage output."""
        self.addParameter(QgsProcessingParameterRasterLayer(self.BEFORE, "Before image"))
        self.addParameter(QgsProcessingParameterRasterLayer(self.AFTER, "After image"))
        self.addParameter(QgsProcessingParameterFile(
            self.MODEL, "Model file (empty: geocd's default model)", optional=True,
            fileFilter="geocd models (*.safetensors);;All files (*.*)"))
        self.addParameter(QgsProcessingParameterBoolean(self.TTA, "Test-time augmentation (6x slower)", defaultValue=False))
        self.addParameter(QgsProcessingParameterBoolean(self.ALIGN, "Align dates (undo a global shift between them)",
                                                        defaultValue=False))
        self.addParameter(QgsProcessingParameterNumber(
            self.THRESHOLD, "Change probability threshold", NUMBER_DOUBLE,
            defaultValue=0.5, minValue=0.0, maxValue=1.0))
        self.addParameter(QgsProcessingParameterNumber(
            self.MIN_AREA, "Minimum change area (m²; empty: the area of 3.5 pixels)", NUMBER_DOUBLE,
            optional=True, minValue=0.0))
        self.addParameter(QgsProcessingParameterString(
            self.ONLY, "Only changes from or to these classes (comma-separated, e.g. building; empty: all)", optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.ZONES, "Zones (changed area per zone and from→to pair)", [VECTOR_POLYGON], optional=True))
        self.addParameter(QgsProcessingParameterField(
            self.ZONE_FIELD, "Zone id field (empty: the feature id)", parentLayerParameterName=self.ZONES, optional=True))
        output = QgsProcessingParameterVectorDestination(self.OUTPUT, "Changes")
        output.setSupportsNonFileBasedOutput(False)
        self.addParameter(output)
        self.addOutput(QgsProcessingOutputFile(self.ZONES_TABLE, "Changed area by zone (CSV)"))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        """Run ``geocd predict`` and return the GeoPackage (Processing loads it when asked to)."""
        before = self._raster_path(parameters, self.BEFORE, context)
        after = self._raster_path(parameters, self.AFTER, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        if Path(output).suffix.lower() != ".gpkg":
            raise QgsProcessingException(f"geocd writes GeoPackages: give the output a .gpkg name, not '{output}'")
        arguments = ["predict", before, after, "-o", output, "--overwrite", "--progress", "json",
                     "--threshold", repr(self.parameterAsDouble(parameters, self.THRESHOLD, context))]
        if parameters.get(self.MIN_AREA) not in (None, ""):
            arguments += ["--min-area", repr(self.parameterAsDouble(parameters, self.MIN_AREA, context))]
        for name in self.parameterAsString(parameters, self.ONLY, context).split(","):
            if name.strip():
                arguments += ["--only", name.strip()]
        if self.parameterAsBoolean(parameters, self.TTA, context):
            arguments.append("--tta")
        if self.parameterAsBoolean(parameters, self.ALIGN, context):
            arguments.append("--align")
        model = self.parameterAsFile(parameters, self.MODEL, context)
        if model:
            arguments += ["--model", model]
        table = None
        if parameters.get(self.ZONES) not in (None, ""):
            zones = self.parameterAsCompatibleSourceLayerPath(parameters, self.ZONES, context, ["gpkg", "shp"], "gpkg", feedback)
            arguments += ["--zones", zones]
            field = self.parameterAsString(parameters, self.ZONE_FIELD, context)
            if field:
                arguments += ["--zone-field", field]
            table = str(Path(output).with_name(f"{Path(output).stem}_zones.csv"))
        executable = find_executable(configured_executable())
        feedback.pushCommandInfo(shlex.join([executable, *arguments]))
        run_geocd(executable, arguments, feedback, Path(output))
        style_on_load(context, output)
        if table is None:
            return {self.OUTPUT: output}
        if context.willLoadLayerOnCompletion(output):
            self._load_table(table, context)
        return {self.OUTPUT: output, self.ZONES_TABLE: table}

    def _load_table(self, path: str, context: QgsProcessingContext) -> None:
        """Load CSV ``path`` (geocd's zone table) into the project as a table when the run ends."""
        name = Path(path).stem
        uri = QUrl.fromLocalFile(path).toString() + "?type=csv&delimiter=,&detectTypes=yes&geomType=none"
        layer = QgsVectorLayer(uri, name, "delimitedtext")
        context.temporaryLayerStore().addMapLayer(layer)
        context.addLayerToLoadOnCompletion(layer.id(), QgsProcessingContext.LayerDetails(name, context.project(), self.ZONES_TABLE))

    def _raster_path(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> str:
        """The file behind raster parameter ``name`` (geocd reads files, not QGIS layers)."""
        layer: QgsRasterLayer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            raise QgsProcessingException(self.invalidRasterError(parameters, name))
        if layer.providerType() != "gdal":
            raise QgsProcessingException(f"'{layer.name()}' is a {layer.providerType()} layer: geocd needs a raster file")
        return QgsProviderRegistry.instance().decodeUri("gdal", layer.source()).get("path") or layer.source()
