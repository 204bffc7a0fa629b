"""Settings: conf/default.yaml, then a profile, then a user file, then --set overrides.

Every setting must exist in default.yaml; anything else is a typo and is refused with
its dotted name, so a misspelt threshold never silently falls back to a default.
"""
from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import yaml

from sparkdup.errors import ConfigError


def _package_yaml(name: str) -> dict:
    try:
        text = resources.files("sparkdup.conf").joinpath(f"{name}.yaml").read_text()
    except FileNotFoundError as exc:
        raise ConfigError(f"no such profile '{name}' (looked for conf/{name}.yaml)") from exc
    return yaml.safe_load(text) or {}


def _merge(base: dict, update: dict, where: str, prefix: str = "") -> None:
    for key, value in update.items():
        dotted = f"{prefix}{key}"
        if key not in base:
            raise ConfigError(f"unknown setting '{dotted}' in {where}")
        if isinstance(base[key], dict) and isinstance(value, dict):
            _merge(base[key], value, where, dotted + ".")
        elif isinstance(base[key], dict):
            raise ConfigError(f"setting '{dotted}' in {where} is a section, not a value")
        else:
            base[key] = value


def _parse_override(item: str) -> dict:
    if "=" not in item:
        raise ConfigError(f"--set expects key=value, got '{item}'")
    dotted, raw = item.split("=", 1)
    value = yaml.safe_load(raw) if raw != "" else None
    tree: dict[str, Any] = {}
    node = tree
    parts = dotted.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return tree


def load_config(profile: str | None = None, files: Iterable[str] = (), overrides: Iterable[str] = ()) -> dict:
    """Return the merged settings as plain nested dicts."""
    cfg = _package_yaml("default")
    if profile:
        _merge(cfg, _package_yaml(profile), f"profile '{profile}'")
    for file in files:
        path = Path(file)
        if not path.is_file():
            raise ConfigError(f"config file not found: {file}")
        _merge(cfg, yaml.safe_load(path.read_text()) or {}, str(path))
    for item in overrides:
        _merge(cfg, _parse_override(item), f"--set {item}")
    return cfg


def with_overrides(cfg: dict, **sections: dict) -> dict:
    """A copy of cfg with some values replaced (used by CLI flags such as --format)."""
    out = copy.deepcopy(cfg)
    for section, values in sections.items():
        _merge(out[section], {k: v for k, v in values.items() if v is not None}, "command line", section + ".")
    return out
