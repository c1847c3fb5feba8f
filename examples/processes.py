"""Start, await and stop Faregate server processes for examples and local experiments.

Each process writes its output to log files in a directory of the caller's choosing;
readiness is the `--ready-file` JSON the servers write once serving (see
docs/architecture.md). `stop_all` always ends every process started here: SIGTERM,
a grace period, then SIGKILL. Must not import the servers; it only runs their
console scripts.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ProcessError(RuntimeError):
    """A server that could not be started, or did not become ready."""


@dataclass
class Managed:
    name: str
    process: subprocess.Popen[bytes]
    stderr_path: Path

    def stderr_tail(self, lines: int = 15) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            return "(no stderr captured)"
        tail = text.strip().splitlines()[-lines:]
        return "\n".join(f"    {line}" for line in tail) or "    (stderr is empty)"


def console_script(name: str) -> Path:
    """A console script installed next to this interpreter (the virtualenv's bin/)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise ProcessError(f"{path} not found; install the project first (make demo does)")
    return path


class Processes:
    """The processes one run started, stopped together in reverse order."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self.started: list[Managed] = []

    def start(self, name: str, argv: list[str]) -> Managed:
        stdout_path = self._log_dir / f"{name}.stdout.log"
        stderr_path = self._log_dir / f"{name}.stderr.log"
        with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
            # A session of its own: Ctrl-C reaches only us, and we stop the servers in
            # order (sidecars first, so they can hand their last usage to the control plane).
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        managed = Managed(name, process, stderr_path)
        self.started.append(managed)
        return managed

    def wait_ready(self, managed: Managed, ready_file: Path, timeout: float) -> dict[str, Any]:
        """The ready file's JSON once it appears; fails fast if the process exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = managed.process.poll()
            if code is not None:
                raise ProcessError(
                    f"{managed.name} exited with code {code} before it was ready; stderr:\n"
                    + managed.stderr_tail()
                )
            ready = read_ready_file(ready_file)
            if ready is not None:
                return ready
            time.sleep(0.05)
        raise ProcessError(
            f"{managed.name} did not write {ready_file} within {timeout:g}s; stderr:\n"
            + managed.stderr_tail()
        )

    def stop_all(self, grace: float = 5.0) -> None:
        """SIGTERM each process (last started first), wait, SIGKILL what is left."""
        for managed in reversed(self.started):
            process = managed.process
            if process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                print(
                    f"{managed.name} ignored SIGTERM for {grace:.0f}s; killing it", file=sys.stderr
                )
                process.kill()
                process.wait()
        self.started.clear()


def read_ready_file(path: Path) -> dict[str, Any] | None:
    """The parsed ready file, or None while it is absent (it is written atomically)."""
    try:
        value = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None
