"""Routing's files load through the shared loader (notify's contacts file uses the same one)."""

from heard_shared.config_files import ConfigFileError, load_model, parse_duration

__all__ = ["ConfigFileError", "load_model", "parse_duration"]
