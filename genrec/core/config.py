"""Dataclass configs from CLI flags and optional JSON files, with unknown keys rejected."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

from genrec.core.errors import GenrecError
from genrec.core.io import read_json

T = TypeVar("T")


def apply_overrides(config: T, overrides: dict[str, Any], source: str = "config") -> T:
    """Return a copy of dataclass ``config`` with ``overrides`` applied; unknown keys are an error."""
    names = {field.name for field in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise GenrecError(
            f"{source}: unknown option(s) {', '.join(unknown)} for {type(config).__name__}; "
            f"valid options: {', '.join(sorted(names))}"
        )
    return dataclasses.replace(config, **overrides)


def load_config_file(path: str | Path | None) -> dict[str, Any]:
    """Read a JSON config file (a flat object, or one with sections such as "tokenizer")."""
    if path is None:
        return {}
    data = read_json(path)
    if not isinstance(data, dict):
        raise GenrecError(f"{path}: expected a JSON object at the top level")
    return data
