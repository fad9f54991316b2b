"""User-facing errors: the CLI prints their message (no traceback) and exits non-zero."""


class ForgeMLError(Exception):
    """A problem the user can fix; the message says what and how."""


class ConfigError(ForgeMLError):
    """An unknown or invalid config key, value or override."""


class DataError(ForgeMLError):
    """A missing, corrupted or invalid data source."""


class TrackingError(ForgeMLError):
    """The MLflow tracking store cannot be reached or used."""


class TrainingError(ForgeMLError):
    """Training diverged or could not run."""


class ModelFileError(ForgeMLError):
    """A model file that is missing, damaged, tampered with, or not in a safe format."""
