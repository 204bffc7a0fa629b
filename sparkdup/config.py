"""Settings: conf/default.yaml, then a profile, then user files, then command-line overrides.

The values and their documentation live in ``conf/default.yaml``; the shape of every
setting — its type, its range or allowed values — is declared here, next to its name, in
one frozen dataclass per section (:mod:`sparkdup.settings_schema`). :func:`load_config`
merges the layers, converts each value to its declared type and checks it, once, before
Spark starts: a run never fails in its third stage for a setting it could have refused at
second 0. Every mistake is a :class:`~sparkdup.errors.ConfigError` naming the setting and
what is allowed; messages name keys, never the value given (a credential passed by
mistake must not land in logs).

The result is immutable. Sections read both as attributes (``cfg.neighbors.k``) and as
mappings (``cfg["neighbors"]["k"]``), the names of the YAML file. A changed copy is made
with :meth:`Settings.replace` (``cfg.replace({"neighbors.k": 20})``), which checks again.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from sparkdup.errors import ConfigError
from sparkdup.settings_schema import RENAMED, Settings, build_settings

__all__ = ["ConfigError", "Settings", "load_config", "parse_override", "PROFILES"]

PROFILES = ("local", "databricks", "emr")


def _read_yaml(text: str, where: str) -> dict:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{where} is not valid YAML{at}: {getattr(exc, 'problem', None) or 'syntax error'}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must hold a mapping of sections (e.g. 'neighbors: {{k: 20}}'), "
                          f"not a {type(data).__name__}")
    return data


def _package_yaml(name: str) -> dict:
    try:
        text = resources.files("sparkdup.conf").joinpath(f"{name}.yaml").read_text()
    except FileNotFoundError:
        raise ConfigError(f"no such profile '{name}': choose one of {', '.join(PROFILES)}") from None
    return _read_yaml(text, f"profile '{name}'")


def _user_file(file: str) -> dict:
    path = Path(file)
    if not path.is_file():
        raise ConfigError(f"--conf file not found: {file}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--conf file {file} cannot be read ({type(exc).__name__})") from None
    return _read_yaml(text, f"--conf file {file}")


def _flatten(tree: Mapping, where: str, prefix: str = "") -> dict[str, Any]:
    """{'neighbors.k': 20, ...} from nested mappings (a value that is a mapping is a section)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if not isinstance(key, str):
            raise ConfigError(f"setting names must be text: '{prefix}{key}' in {where}")
        dotted = prefix + key
        if isinstance(value, dict):
            out.update(_flatten(value, where, dotted + "."))
        else:
            out[dotted] = value
    return out


def parse_override(item: str) -> tuple[str, Any]:
    """('neighbors.k', 20) from 'neighbors.k=20'; the value is read as YAML (lists, numbers)."""
    if "=" not in item:
        raise ConfigError("--set expects KEY=VALUE (e.g. --set neighbors.k=20)")
    dotted, raw = item.split("=", 1)
    dotted = dotted.strip()
    if not dotted:
        raise ConfigError("--set expects KEY=VALUE: the key is empty")
    if raw == "":
        return dotted, None
    try:
        return dotted, yaml.safe_load(raw)
    except yaml.YAMLError:
        raise ConfigError(f"--set {dotted}: the value is not valid YAML (quote text, write lists as [a, b])") from None


def load_config(profile: str | None = None, files: Iterable[str] = (), overrides: Iterable[str] = (),
                values: Mapping[str, Any] | None = None) -> Settings:
    """The checked settings: defaults, then `profile`, then each file, then `--set` items,
    then `values` (dotted names, e.g. from command-line flags); later layers win."""
    layers: list[tuple[str, dict[str, Any]]] = [("conf/default.yaml", _flatten(_package_yaml("default"), "default"))]
    if profile:
        layers.append((f"profile '{profile}'", _flatten(_package_yaml(profile), f"profile '{profile}'")))
    for file in files:
        layers.append((f"--conf {file}", _flatten(_user_file(file), f"--conf {file}")))
    for item in overrides:
        key, value = parse_override(item)
        layers.append(("--set", {key: value}))
    if values:
        layers.append(("the command line", dict(values)))
    return build_settings(layers)


__all__ += ["RENAMED"]
