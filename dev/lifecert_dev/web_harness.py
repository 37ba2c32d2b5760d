"""``lifecert web serve`` as a real process on a free port, ready once ``/healthz``
answers: for the web tests (tests/web), the web benchmark and the demo."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from lifecert_dev.sandbox import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class WebError(RuntimeError):
    """The web server did not start; the message carries its log."""


@dataclass
class WebServer:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def start_web(dsn: str, pki_dir: Path, log: Path, *args: str,
              timeout: float = 60.0) -> WebServer:
    """Start ``lifecert web serve`` on 127.0.0.1 and a free port, as the web's role
    (``dsn``: lifecert_web's); ``args`` are more options (e.g. ``--poll-seconds 2``)."""
    port = free_port()
    command = [sys.executable, "-m", "lifecert.cli", "web", "serve",
               "--listen", f"127.0.0.1:{port}", "--dsn", dsn,
               "--pki-dir", str(pki_dir), *args]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=dict(os.environ),
                                   stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    server = WebServer(process, port, log)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise WebError(f"lifecert web serve exited {process.returncode}:\n"
                           + log.read_text(errors="replace"))
        try:
            with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise WebError(f"lifecert web serve not ready in {timeout:.0f} s:\n"
                           + log.read_text(errors="replace"))
        time.sleep(0.2)
