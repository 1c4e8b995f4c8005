"""CLAUDE_FORCE_OFFLINE=1: the offline demo's in-process Anthropic-compatible server.

One FakeAnthropicServer per process, started on first use and shared by every
Orchestrator; the client is pointed at it instead of the real API. This is the only
place the engine imports the testing package.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["offline_base_url"]

_lock = threading.Lock()
_server: Any = None


def offline_base_url() -> str:
    """The base URL of this process's offline server, starting it if needed."""
    global _server
    with _lock:
        if _server is None:
            from ..testing import FakeAnthropicServer

            _server = FakeAnthropicServer(chunk_delay_s=0.01).start()
        return str(_server.url)
