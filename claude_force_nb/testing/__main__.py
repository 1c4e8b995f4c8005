"""``python -m claude_force_nb.testing``: serve FakeAnthropicServer until stdin closes or Ctrl-C.

Prints the server's URL on the first line, so a parent process can read where to connect.
"""

from __future__ import annotations

import argparse
import sys

from .server import FakeAnthropicServer


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, serve, and return the exit status."""
    ap = argparse.ArgumentParser(prog="python -m claude_force_nb.testing",
                                 description="FakeAnthropicServer on 127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds before each response")
    ap.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between stream chunks")
    args = ap.parse_args(argv)
    with FakeAnthropicServer(latency_s=args.latency, chunk_delay_s=args.chunk_delay, port=args.port) as server:
        print(server.url, flush=True)
        try:
            sys.stdin.read()  # returns when the parent closes our stdin
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
