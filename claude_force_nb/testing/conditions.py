"""Server-wide conditions that last a while: overload (a share of requests refused) and outages.

Both are deterministic and timed on the server clock, so a test decides exactly which request
fails and when the condition ends.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ErrorReply, retry_headers

__all__ = ["OUTAGE_MODES", "Outage", "Overload"]

OUTAGE_MODES = ("drop", "refuse")

_EPSILON = 1e-9  # 20 x 0.45 must make exactly 9, whatever the float rounding


@dataclass
class Overload:
    """``share`` of ``/v1/messages`` requests answered ``status`` until ``until`` (None: until lifted).

    The choice is error diffusion, not chance: each request adds ``share`` to a credit, and a
    request that brings the credit to 1 is refused (and pays 1).  So exactly
    ``floor(n * share)`` of the first ``n`` requests fail, spread evenly: ``share=0.5`` refuses
    the 2nd, 4th, 6th ...; ``share=1/3`` the 3rd, 6th ...; ``share=1`` all of them.
    """

    share: float
    status: int = 529
    until: float | None = None
    retry_after_ms: float | None = None
    credit: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.share <= 1.0:
            raise ValueError(f"overload share must be in (0, 1], got {self.share}")
        if self.status < 400:
            raise ValueError(f"overload status must be an error status, got {self.status}")

    def over(self, now: float) -> bool:
        """Whether the period has ended at ``now``."""
        return self.until is not None and now >= self.until

    def strikes(self) -> ErrorReply | None:
        """The error for the next request, or None if this one goes through."""
        self.credit += self.share
        if self.credit < 1.0 - _EPSILON:
            return None
        self.credit -= 1.0
        return ErrorReply(self.status, headers=retry_headers(self.retry_after_ms))


@dataclass(frozen=True)
class Outage:
    """The server is down until ``until`` (None: until ``up()``).

    ``drop``: connections are accepted and at once reset (TCP RST) before any response.
    ``refuse``: the listening socket is closed, so connecting fails (ECONNREFUSED).
    """

    mode: str
    until: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in OUTAGE_MODES:
            raise ValueError(f"outage mode must be one of {OUTAGE_MODES}, got {self.mode!r}")

    def over(self, now: float) -> bool:
        return self.until is not None and now >= self.until
