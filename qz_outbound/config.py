"""The one config loader: YAML files HQ edits, checked against pydantic models.

A mistake is reported as ``file:line: field: what is wrong`` so an analyst can
find it without reading Python. Line numbers come from the YAML node tree, so
they point at the offending value (or at its parent mapping when the field is
missing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from qz_outbound import CONFIG_DIR

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A config file that cannot be used; ``problems`` lists each as (file, line, field, message)."""

    def __init__(self, problems: list[tuple[str, int | None, str, str]]):
        self.problems = problems
        lines = []
        for file, line, field, message in problems:
            where = f"{file}:{line}" if line else file
            lines.append(f"{where}: {field or '(file)'}: {message}")
        super().__init__("\n".join(lines))


class StrictModel(BaseModel):
    """Base for config models: unknown keys are mistakes (a typo must not be ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _line_index(node: yaml.Node, path: tuple = (), index: dict | None = None) -> dict[tuple, int]:
    """Map every key path in a YAML document to its 1-based line number."""
    if index is None:
        index = {}
    index[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            index[path + (key,)] = key_node.start_mark.line + 1
            _line_index(value_node, path + (key,), index)
            # a value on its own line(s) is better pointed at than its key
            index[path + (key,)] = value_node.start_mark.line + 1 if isinstance(
                value_node, yaml.ScalarNode) else key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, path + (i,), index)
    return index


def _nearest_line(index: dict[tuple, int], loc: tuple) -> int | None:
    loc = tuple(loc)
    while loc:
        if loc in index:
            return index[loc]
        loc = loc[:-1]
    return index.get(())


def parse_yaml(path: Path) -> tuple[Any, dict[tuple, int]]:
    """Read a YAML file, returning its data and a key-path → line index."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise ConfigError([(str(path), line, "", f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from exc
    return data, (_line_index(node) if node is not None else {})


def validate(model: type[M], data: Any, path: Path, index: dict[tuple, int] | None = None) -> M:
    """Validate already-parsed data, raising :class:`ConfigError` with lines."""
    index = index or {}
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            field = ".".join(str(p) for p in loc)
            problems.append((str(path), _nearest_line(index, loc), field, err["msg"]))
        raise ConfigError(problems) from None


def load(model: type[M], path: Path) -> M:
    """Load and validate one YAML config file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError([(str(path), None, "", "file not found")])
    data, index = parse_yaml(path)
    return validate(model, data, path, index)


def config_path(name: str) -> Path:
    """A config file, from ``QZ_CONFIG_DIR`` if set (tests, deployments), else the project's ``config/``."""
    import os

    base = Path(os.environ.get("QZ_CONFIG_DIR", CONFIG_DIR))
    return base / name
