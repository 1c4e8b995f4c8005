"""Helpers for tests that drive real ipykernel processes through jupyter_client."""

from __future__ import annotations

import json
import os
import queue
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client import KernelManager

KERNEL_NAME = "claude-force-nb"


def write_kernelspec(jupyter_path: str | os.PathLike[str]) -> str:
    """Write a kernelspec for *this* interpreter under ``jupyter_path/kernels``.

    Tests and the demo put ``jupyter_path`` first on JUPYTER_PATH so kernels they start
    run the same Python (and the same installed claude_force_nb) as they do, whatever
    other "python3" kernels the machine has. Returns the kernel name to ask for.
    """
    spec_dir = Path(jupyter_path) / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (claude-force-nb)",
        "language": "python",
        "metadata": {"debugger": False},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return KERNEL_NAME


@dataclass
class Reply:
    """Everything a cell produced: its execute_reply content and its iopub messages."""

    content: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.content["status"] == "ok"

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["msg_type"] in types]

    @property
    def stdout(self) -> str:
        return "".join(m["content"]["text"] for m in self.of_type("stream") if m["content"]["name"] == "stdout")

    def markdown(self) -> list[str]:
        return [m["content"]["data"].get("text/markdown", "") for m in self.of_type("display_data", "update_display_data")]


class Kernel:
    """A started kernel plus a client; ``run(code)`` waits for the cell to finish."""

    def __init__(self, kernel_name: str, cwd: str) -> None:
        self.km = KernelManager(kernel_name=kernel_name)
        self.km.start_kernel(cwd=cwd)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.stray: list[dict[str, Any]] = []  # iopub messages belonging to no awaited cell

    def execute(self, code: str) -> str:
        return self.kc.execute(code)

    def collect(self, msg_id: str, timeout: float = 60) -> Reply:
        """Collect iopub messages of ``msg_id`` until its idle status, then its reply.

        Messages of other cells (e.g. a background run updating an earlier cell) are kept
        in ``stray`` instead of being dropped, as execute_interactive would.
        """
        deadline = time.monotonic() + timeout
        mine: list[dict[str, Any]] = []
        while True:
            msg = self.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") != msg_id:
                self.stray.append(msg)
                continue
            mine.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        while True:
            reply = self.kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg_id:
                return Reply(reply["content"], mine)

    def run(self, code: str, timeout: float = 60) -> Reply:
        return self.collect(self.execute(code), timeout)

    def drain(self, seconds: float) -> list[dict[str, Any]]:
        """iopub messages arriving within ``seconds`` (added to ``stray`` too)."""
        end = time.monotonic() + seconds
        got = []
        while time.monotonic() < end:
            try:
                got.append(self.kc.get_iopub_msg(timeout=max(0.01, end - time.monotonic())))
            except queue.Empty:
                break
        self.stray.extend(got)
        return got

    def restart(self) -> None:
        self.km.restart_kernel(now=True)
        self.kc.wait_for_ready(timeout=60)
        self.drain(0.2)

    def shutdown(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)
