"""Real Faregate processes for integration tests: start, wait until ready, signal.

Each server is started through its console script with port 0 and a ready file,
so tests never guess ports and never sleep for a fixed time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


@dataclass
class ServerProcess:
    """One running server and what its ready file said."""

    name: str
    args: list[str]
    ready_file: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    ready: dict[str, Any] = field(default_factory=dict)

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self.ready_file.unlink(missing_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [*self.args, "--ready-file", str(self.ready_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            if self.ready_file.exists():
                self.ready = json.loads(self.ready_file.read_text())
                return self
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")

    @property
    def address(self) -> str:
        return str(self.ready["listen"])

    @property
    def metrics_address(self) -> str:
        return str(self.ready["metrics"])

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; SIGKILL if it does not stop in time."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"{self.name} ignored SIGTERM:\n{self.log_tail()}") from None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def controlplane(
    workdir: Path, database_url: str, name: str = "controlplane", extra: Sequence[str] = ()
) -> ServerProcess:
    return ServerProcess(
        name=name,
        args=[
            str(BIN / "faregate-controlplane"),
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--database-url",
            database_url,
            "--data-dir",
            str(workdir / name),
            "--heartbeat-interval",
            "1",
            *extra,
        ],
        ready_file=workdir / f"{name}.ready.json",
        log_path=workdir / f"{name}.log",
    )


def sidecar(workdir: Path, controlplane_address: str, service: str) -> ServerProcess:
    return ServerProcess(
        name=f"sidecar-{service}",
        args=[
            str(BIN / "faregate-sidecar"),
            "--controlplane",
            controlplane_address,
            "--service",
            service,
            "--listen",
            f"unix://{workdir / (service + '.sock')}",
            "--metrics-listen",
            "127.0.0.1:0",
            "--state-dir",
            str(workdir / f"state-{service}"),
        ],
        ready_file=workdir / f"sidecar-{service}.ready.json",
        log_path=workdir / f"sidecar-{service}.log",
    )


def faregate_cli(controlplane_address: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the `faregate` admin CLI as an operator would."""
    return subprocess.run(
        [str(BIN / "faregate"), "--controlplane", controlplane_address, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def wait_for(predicate: Any, timeout: float = 15.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll until predicate() returns something truthy; fail naming what was awaited."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}: {last!r}")
