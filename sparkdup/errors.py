"""The one family of errors a user can fix.

Every mistake a user can correct (a setting, an input path, a model file, the output
location, a missing graph engine) raises a subclass of ``UserError`` whose message is one
line naming the setting, file or value and what is allowed. The CLI prints that line and
exits with code 2, without a traceback; any other exception is a bug and keeps its
traceback.
"""
from __future__ import annotations


class UserError(Exception):
    """Base of every error the user can fix; the message is the one line they see."""


class ConfigError(UserError, ValueError):
    """A setting, a settings file, a profile or a command-line flag is wrong."""


class InputError(UserError):
    """The input (folder, glob, manifest) cannot be read as given."""


class ModelError(UserError, ValueError):
    """The embedding model named by embed.model cannot be loaded."""


class OutputError(UserError):
    """The output location cannot be written, or holds something that is not sparkdup's."""


class GraphEngineError(UserError):
    """The requested graph engine (e.g. GraphFrames) is not available in this session."""
