"""The provider's one setting: which ``geocd`` executable to run (Processing › Providers › geocd)."""

from __future__ import annotations

from qgis.PyQt.QtGui import QIcon

EXECUTABLE_SETTING = "GEOCD_EXECUTABLE"


def add_settings(group: str, icon: QIcon) -> None:
    """Show the executable setting in the Processing options under ``group``."""
    from processing.core.ProcessingConfig import ProcessingConfig, Setting

    ProcessingConfig.settingIcons[group] = icon
    ProcessingConfig.addSetting(Setting(
        group, EXECUTABLE_SETTING, "geocd executable (empty: 'geocd' found on PATH)", "", valuetype=Setting.FILE))
    ProcessingConfig.readSettings()


def remove_settings() -> None:
    """Remove the executable setting from the Processing options."""
    from processing.core.ProcessingConfig import ProcessingConfig

    ProcessingConfig.removeSetting(EXECUTABLE_SETTING)


def configured_executable() -> str:
    """The geocd path set in the Processing options; '' when unset."""
    from processing.core.ProcessingConfig import ProcessingConfig

    return ProcessingConfig.getSetting(EXECUTABLE_SETTING) or ""


def set_configured_executable(path: str) -> None:
    """Make ``path`` the geocd the algorithms run (saved in the user's QGIS settings)."""
    from processing.core.ProcessingConfig import ProcessingConfig

    ProcessingConfig.setSettingValue(EXECUTABLE_SETTING, path)
