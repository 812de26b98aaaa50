"""Errors yolostream raises on bad input; each message names the file, key or value at fault."""


class YolostreamError(Exception):
    """Base class of every error yolostream raises on purpose."""


class CheckpointError(YolostreamError):
    """A model file that cannot be loaded: wrong type, truncated, unsafe, or not a supported architecture."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle that asks for a global outside the allow-list (it could run code); nothing was executed."""


class ImageReadError(YolostreamError):
    """An image or video that cannot be read or decoded."""


class ShapeError(YolostreamError):
    """An input whose shape or dtype the model cannot take."""


class ConfigError(YolostreamError):
    """A configuration value that is missing or invalid."""
