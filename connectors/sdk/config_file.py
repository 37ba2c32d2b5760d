"""The connectors' configuration file: one TOML file listing connector instances.

::

    [kafka]                      # optional; default: $LIFECERT_KAFKA_BOOTSTRAP or the local stack
    bootstrap = "127.0.0.1:19092"
    topic_prefix = ""            # optional; default: $LIFECERT_TOPIC_PREFIX

    [connectors.master]          # an instance named "master"
    kind = "pension-master"      # the connector type (entry point in lifecert.connectors)
    dsn = "postgresql://sync@master-db/pension"
    password = { env = "MASTER_DB_PASSWORD" }   # a secret: read from the environment

    [connectors.master.runner]   # optional: how the runner drives it
    batch_size = 500
    retry_initial = 0.5          # seconds before the first retry, doubled up to retry_max
    retry_max = 30.0

A secret is written as ``{ env = "NAME" }`` and never appears in the file, in logs or in
``lifecert connectors check``'s output; it is resolved when the configuration is loaded,
and a missing variable is an error naming the instance, the key and the variable.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.sdk.errors import ConfigError

RUNNER_DEFAULTS: dict[str, float | int] = {
    "batch_size": 500,
    "retry_initial": 0.5,
    "retry_max": 30.0,
    "idle_interval": 1.0,
}
MASK = "***"


@dataclass(frozen=True)
class RunnerSettings:
    batch_size: int = 500
    retry_initial: float = 0.5
    retry_max: float = 30.0
    # Seconds between polls that returned nothing (a source may wake earlier).
    idle_interval: float = 1.0


@dataclass(frozen=True)
class InstanceConfig:
    name: str
    kind: str
    settings: dict[str, Any]
    runner: RunnerSettings
    secret_keys: frozenset[str] = frozenset()

    def public_settings(self) -> dict[str, Any]:
        """The settings with every secret masked, and any password written inside a URL
        (``postgresql://user:pw@host``) too: what may be shown or logged."""
        return {k: (MASK if k in self.secret_keys else _mask_url_password(v))
                for k, v in self.settings.items()}


@dataclass(frozen=True)
class ConnectorsConfig:
    path: Path
    bootstrap: str | None = None
    topic_prefix: str | None = None
    instances: dict[str, InstanceConfig] = field(default_factory=dict)

    def instance(self, name: str) -> InstanceConfig:
        try:
            return self.instances[name]
        except KeyError:
            known = ", ".join(sorted(self.instances)) or "none"
            raise ConfigError(
                f"{self.path}: no connector instance named {name!r} "
                f"(instances in this file: {known}); add a [connectors.{name}] table"
            ) from None


def _mask_url_password(value: Any) -> Any:
    if isinstance(value, str):
        return _URL_PASSWORD.sub(rf"\1{MASK}@", value)
    return value


_URL_PASSWORD = re.compile(r"(\w+://[^/:@\s]*:)[^@\s]*@")


def load(path: Path, environ: Mapping[str, str] | None = None) -> ConnectorsConfig:
    """Read and check the configuration file ``path``; secrets from ``environ``
    (default ``os.environ``). Raises :class:`ConfigError` saying where and what."""
    env = os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the connectors configuration {path}: {exc.strerror}") \
            from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"kafka", "connectors"})
    if unknown:
        raise ConfigError(f"{path}: unknown top-level table(s) {unknown}; "
                          f"expected [kafka] and [connectors.NAME]")
    kafka = _table(data, "kafka", path, "[kafka]")
    for key in kafka:
        if key not in ("bootstrap", "topic_prefix"):
            raise ConfigError(f"{path}: [kafka] has unknown key {key!r} "
                              f"(known: bootstrap, topic_prefix)")
    instances: dict[str, InstanceConfig] = {}
    for name, table in _table(data, "connectors", path, "[connectors]").items():
        where = f"{path}: [connectors.{name}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table")
        instances[name] = _instance(name, dict(table), where, env)
    return ConnectorsConfig(
        path=path,
        bootstrap=_optional_str(kafka, "bootstrap", f"{path}: [kafka]"),
        topic_prefix=_optional_str(kafka, "topic_prefix", f"{path}: [kafka]"),
        instances=instances,
    )


def _table(data: Mapping[str, Any], key: str, path: Path, shown: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {shown} must be a table")
    return value


def _optional_str(table: Mapping[str, Any], key: str, where: str) -> str | None:
    value = table.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string, got {value!r}")
    return value


def _instance(
    name: str, table: dict[str, Any], where: str, env: Mapping[str, str]
) -> InstanceConfig:
    kind = table.pop("kind", None)
    if not isinstance(kind, str) or not kind:
        raise ConfigError(f"{where}: `kind` is required (the connector type, e.g. "
                          f"\"pension-master\"; `lifecert connectors list` shows them)")
    runner = _runner(table.pop("runner", {}), f"{where}.runner")
    settings: dict[str, Any] = {}
    secrets: set[str] = set()
    for key, value in table.items():
        if isinstance(value, dict) and set(value) == {"env"}:
            variable = value["env"]
            if not isinstance(variable, str) or variable not in env:
                raise ConfigError(
                    f"{where}: {key} is read from the environment variable {variable!r}, "
                    f"which is not set; export it before starting the connector"
                )
            settings[key] = env[variable]
            secrets.add(key)
        else:
            settings[key] = value
    return InstanceConfig(name, kind, settings, runner, frozenset(secrets))


def _runner(table: Any, where: str) -> RunnerSettings:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in RUNNER_DEFAULTS:
            raise ConfigError(f"{where}: unknown key {key!r} "
                              f"(known: {', '.join(RUNNER_DEFAULTS)})")
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{where}: {key} must be a positive number, got {value!r}")
        if key == "batch_size" and not isinstance(value, int):
            raise ConfigError(f"{where}: batch_size must be a whole number, got {value!r}")
        values[key] = value
    return RunnerSettings(**values)
