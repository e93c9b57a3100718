"""Loads a department's editable YAML files into models and refuses bad ones with the file, line and reason."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


class ConfigFileError(SystemExit):
    """Stops start-up with a message a department administrator can act on."""


def parse_duration(value: Any) -> timedelta:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, timedelta):
        return value
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration like 90s, 15m, 4h or 3d")
    return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])


def _line_of(node: yaml.Node | None, location: tuple[int | str, ...]) -> int | None:
    """Walks the composed YAML tree along a validation error's location to find its line."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in location:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def load_model(path: Path, model: type[ModelT]) -> ModelT:
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigFileError(f"{path}: cannot read: {error.strerror}") from error
    try:
        raw = yaml.safe_load(text)
        tree = yaml.compose(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigFileError(f"{where}: not valid YAML: {getattr(error, 'problem', error)}") from error
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        lines = []
        for problem in error.errors():
            location = tuple(p for p in problem["loc"] if isinstance(p, int | str))
            line = _line_of(tree, location)
            where = f"{path}:{line}" if line else str(path)
            lines.append(f"{where}: {'.'.join(str(p) for p in location) or '(top level)'}: {problem['msg']}")
        raise ConfigFileError("Invalid configuration file:\n" + "\n".join(lines)) from error
