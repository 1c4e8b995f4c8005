"""``python -m claude_force_nb.testing``: serve FakeAnthropicServer until stdin closes or Ctrl-C.

Prints the server's URL on the first line, so a parent process can read where to connect::

    python -m claude_force_nb.testing --latency 0.05 --rpm 50 --otpm 8000 --overload 0.2
"""

from __future__ import annotations

import argparse
import sys

from .server import FakeAnthropicServer


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m claude_force_nb.testing",
                                 description="FakeAnthropicServer on 127.0.0.1 (an offline Anthropic API)")
    ap.add_argument("--port", type=int, default=0, help="port to listen on (default: any free port)")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds before each response")
    ap.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between stream chunks")
    ap.add_argument("--model", action="append", default=[], metavar="ID",
                    help="also serve this model id (repeatable); others are a 404 unless built in")
    limits = ap.add_argument_group("per-minute rate limits (429 rate_limit_error with retry-after beyond them)")
    limits.add_argument("--rpm", type=int, help="requests per minute")
    limits.add_argument("--tpm", type=int, help="tokens (input + output) per minute")
    limits.add_argument("--itpm", type=int, help="input tokens per minute")
    limits.add_argument("--otpm", type=int, help="output tokens per minute")
    overload = ap.add_argument_group("overload")
    overload.add_argument("--overload", type=float, default=0.0, metavar="SHARE",
                          help="refuse this share (0-1) of /v1/messages requests, spread evenly")
    overload.add_argument("--overload-status", type=int, default=529, choices=(429, 529),
                          help="status of the refused requests (default 529 overloaded_error)")
    overload.add_argument("--overload-for", type=float, default=None, metavar="SECONDS",
                          help="end the overload after this many seconds (default: never)")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, serve, and return the exit status."""
    args = parser().parse_args(argv)
    server = FakeAnthropicServer(latency_s=args.latency, chunk_delay_s=args.chunk_delay, port=args.port,
                                 requests_per_minute=args.rpm, tokens_per_minute=args.tpm,
                                 input_tokens_per_minute=args.itpm, output_tokens_per_minute=args.otpm)
    for model_id in args.model:
        server.add_model(model_id)
    with server:
        if args.overload:
            server.overload(args.overload, status=args.overload_status, duration_s=args.overload_for)
        print(server.url, flush=True)
        try:
            sys.stdin.read()  # returns when the parent closes our stdin
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
