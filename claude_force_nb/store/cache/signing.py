"""Signed envelopes: the subkeys derived from the master secret, and each row's signature.

From one master secret: ``kid`` = the first 8 bytes of SHA-256(master) names the secret a
row was signed under, ``k_id`` keys the cache keys (``keys.key_for``), and ``k_mac`` signs
rows. ``sig = HMAC-SHA256(k_mac, b"claude-force-nb/1\\0" + kid + key + payload)``: binding
the key stops rows being swapped between keys, and the payload holds the expiry, so a
TTL cannot be extended. Checked with ``hmac.compare_digest`` over the stored bytes, before
anything is parsed.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from .keys import key_for

__all__ = ["SIG_DOMAIN", "Signer"]

SIG_DOMAIN = b"claude-force-nb/1\0"


class Signer:
    """Keys and signatures under one master secret (which it does not keep)."""

    def __init__(self, master: bytes) -> None:
        self.kid = hashlib.sha256(master).digest()[:8]
        self._k_id = hmac.new(master, b"claude-force-nb key-id v1", hashlib.sha256).digest()
        k_mac = hmac.new(master, b"claude-force-nb mac v1", hashlib.sha256).digest()
        # keyed once with the fixed prefix; each signature continues a copy
        self._mac = hmac.new(k_mac, SIG_DOMAIN + self.kid, hashlib.sha256)

    def key_for(self, request: dict[str, Any]) -> str:
        """The cache key of a request body under this secret (see ``keys.key_for``)."""
        return key_for(self._k_id, request)

    def sign(self, key: str, payload: bytes) -> bytes:
        """The signature of ``payload`` stored under ``key``."""
        mac = self._mac.copy()
        mac.update(key.encode())
        mac.update(payload)
        return mac.digest()

    def genuine(self, key: str, payload: bytes, sig: bytes) -> bool:
        """Whether ``sig`` is this secret's signature of ``payload`` under ``key``."""
        return hmac.compare_digest(self.sign(key, payload), sig)

    def signed_here(self, key: Any, kid: Any, payload: Any, sig: Any) -> bool:
        """Whether a stored row (its columns read as bytes) carries this secret's kid and a
        genuine signature. Another secret's row, NULLs or a non-text key are all False."""
        if not (isinstance(key, str) and type(kid) is type(payload) is type(sig) is bytes) or kid != self.kid:
            return False
        return self.genuine(key, payload, sig)
