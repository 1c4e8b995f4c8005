"""Helpers for the headless-browser test: a JupyterLab server on 127.0.0.1 and Debian's Chromium
driven by Playwright (no browser download: Playwright's bundled node driver + /usr/bin/chromium)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

# This machine's network is closed: without the background-networking flags Chromium keeps trying
# (and failing) to reach Google services.  A fresh --user-data-dir is passed by launch_browser().
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def find_chromium() -> str | None:
    """Debian's chromium (``apt-get install chromium chromium-driver``), or None."""
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Never go through a proxy, whatever the environment says: every request here is to 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _descendants(pid: int) -> list[int]:
    """PIDs of every live descendant of ``pid`` (kernels run in their own sessions, so a process
    group kill would miss them)."""
    try:
        import psutil  # an ipykernel dependency
    except ImportError:  # pragma: no cover
        return []
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class JupyterLab:
    """``python -m jupyterlab`` on 127.0.0.1 with a random token, serving ``root_dir``.

    Everything that could reach the internet (news feed, update check, extension manager's PyPI
    listing) is switched off; ``window.jupyterapp`` is exposed so the test can run commands.
    Use as a context manager: on exit the server is asked to shut down (which shuts its kernels
    down), then terminated, then killed together with any leftover kernel process.
    """

    # JupyterLab user settings written under $JUPYTER_CONFIG_DIR/lab/user-settings: no news toast
    # ("Would you like to get notified about official Jupyter news?"), no update check.
    USER_SETTINGS = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false", "checkForUpdates": False,
        },
    }

    def __init__(self, root_dir: Path, env: dict[str, str], log_path: Path, startup_timeout: float = 60) -> None:
        if not env.get("JUPYTER_CONFIG_DIR"):
            raise ValueError("env must set JUPYTER_CONFIG_DIR (a private directory)")
        self.root_dir = Path(root_dir)
        self.env = env
        self.log_path = Path(log_path)
        self.startup_timeout = startup_timeout
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    # ---------------------------------------------------------------- HTTP
    def request(self, path: str, method: str = "GET", timeout: float = 5) -> bytes:
        req = urllib.request.Request(self.url + path, method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.read()

    def lab_url(self, notebook: str) -> str:
        return f"{self.url}/lab/tree/{notebook}?token={self.token}"

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> JupyterLab:
        cmd = [
            sys.executable, "-m", "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--port-retries=0",
            "--allow-root",  # CI runs as root; harmless otherwise
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            "--ServerApp.open_browser=False",
            "--ServerApp.terminals_enabled=False",
            "--KernelSpecManager.ensure_native_kernel=False",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
            "--LabApp.expose_app_in_browser=True",
        ]
        settings_dir = Path(self.env["JUPYTER_CONFIG_DIR"]) / "lab" / "user-settings"
        for name, values in self.USER_SETTINGS.items():
            path = settings_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values), encoding="utf-8")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=self.root_dir, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.request("/api/status", timeout=2)
                return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"jupyter lab did not answer on {self.url} within {self.startup_timeout}s:\n"
                                   f"{self.log_tail()}")
            time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            children = _descendants(proc.pid)
            try:
                self.request("/api/shutdown", method="POST", timeout=5)  # also shuts its kernels down
            except (urllib.error.URLError, OSError):
                pass
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            _kill(children)  # no-op unless a kernel outlived its server
        if self._log is not None:
            self._log.close()
            self._log = None


def launch_browser(playwright: Any, chromium: str, profile_dir: Path, **kwargs: Any) -> Any:
    """A persistent Chromium context on a fresh profile (Playwright's launch_persistent_context)."""
    return playwright.chromium.launch_persistent_context(
        str(profile_dir),
        executable_path=chromium,
        headless=True,
        args=list(CHROMIUM_ARGS),
        **kwargs,
    )
