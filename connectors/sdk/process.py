"""Connector instances run the way production runs them: ``lifecert connectors run`` as a
child process, with its log in a file and its metrics on a local port (the test kit and
the demo use this), and the configuration file they read."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.request import urlopen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}"
                                for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} to TOML")


@dataclass(frozen=True)
class InstanceSpec:
    """One ``[connectors.NAME]`` table to write."""

    kind: str
    settings: Mapping[str, Any]
    runner: Mapping[str, Any] = field(default_factory=dict)


def write_config(path: Path, *, bootstrap: str, topic_prefix: str,
                 instances: Mapping[str, InstanceSpec]) -> Path:
    """Write a connectors configuration file (the format of :mod:`connectors.sdk.config_file`)."""
    lines = ["[kafka]", f"bootstrap = {_toml_value(bootstrap)}",
             f"topic_prefix = {_toml_value(topic_prefix)}"]
    for name, spec in instances.items():
        lines += ["", f"[connectors.{name}]", f"kind = {_toml_value(spec.kind)}"]
        lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in spec.settings.items()]
        if spec.runner:
            lines += ["", f"[connectors.{name}.runner]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in spec.runner.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class ConnectorProcess:
    def __init__(self, config: Path, name: str, log_path: Path) -> None:
        self.config = config
        self.name = name
        self.log_path = log_path
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ConnectorProcess:
        argv = [sys.executable, "-m", "lifecert.cli", "connectors", "run", self.name,
                "--config", str(self.config), "--metrics-port", str(self.port)]
        with self.log_path.open("ab") as log:
            log.write(f"\n--- start {' '.join(argv)}\n".encode())
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         env=dict(os.environ))
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait: the exit code (a graceful stop is 0)."""
        assert self.proc is not None
        # Its SIGTERM handler is installed before its metrics answer: a signal sent while
        # it is still starting would kill it rather than stop it.
        deadline = time.monotonic() + 15
        while self.alive and not self.metrics() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.name} did not stop within {timeout} s of SIGTERM; "
                                 f"log:\n{self.log_tail()}") from None

    def kill(self) -> None:
        """SIGKILL: a crash, nothing finished."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def check_alive(self) -> None:
        if not self.alive:
            code = self.proc.returncode if self.proc is not None else None
            raise AssertionError(f"{self.name} exited (code {code}); log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def metrics(self) -> dict[str, float]:
        """The connector's metrics, by name (labels dropped); {} when not reachable."""
        try:
            with urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as response:
                text = response.read().decode()
        except OSError:
            return {}
        out: dict[str, float] = {}
        for line in text.splitlines():
            m = re.match(r"^(lifecert_connector_\w+)(?:\{[^}]*\})? (\S+)$", line)
            if m:
                out[m.group(1)] = float(m.group(2))
        return out

    def wait_metric(self, metric: str, at_least: float, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        value = 0.0
        while time.monotonic() < deadline:
            self.check_alive()
            value = self.metrics().get(metric, 0.0)
            if value >= at_least:
                return value
            time.sleep(0.2)
        raise AssertionError(f"{metric} reached {value}, not {at_least}, within {timeout} s; "
                             f"log:\n{self.log_tail()}")
