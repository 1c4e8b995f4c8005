"""store/cache/signing.py: every row is a signed envelope; tampering is a counted miss,
another secret's row a plain one. Tampering is done with raw SQL on real files."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import sqlite3

import pytest

from claude_force_nb.core.results import Usage
from claude_force_nb.store.cache import CachedResponse, ResponseCache, rowid_of
from claude_force_nb.store.cache.signing import SIG_DOMAIN, Signer

from .cache_fixtures import (  # noqa: F401 (fixtures)
    BASE_REQUEST,
    T0,
    _fresh_warnings,
    cache,
    clock,
    raw,
    raw_query,
    response,
    settings,
)

LOGGER = "claude_force_nb.store.cache"


@pytest.mark.parametrize("master", [b"k", os.urandom(32), os.urandom(64), os.urandom(200)], ids=["1B", "32B", "64B", "200B"])
def test_signature_is_plain_hmac_sha256_under_the_derived_subkey(master):
    signer = Signer(master)
    kid = hashlib.sha256(master).digest()[:8]
    k_mac = hmac.new(master, b"claude-force-nb mac v1", hashlib.sha256).digest()
    assert signer.kid == kid
    for key, payload in [("", b""), ("v1:abc", os.urandom(2146)), ("v1:" + "e" * 64, os.urandom(100_000))]:
        expected = hmac.new(k_mac, SIG_DOMAIN + kid + key.encode() + payload, hashlib.sha256).digest()
        assert signer.sign(key, payload) == expected
        assert signer.sign(key, payload) == expected          # the keyed state is reusable
        assert signer.genuine(key, payload, expected)
        assert not signer.genuine(key, payload + b"\0", expected)


def test_signed_here_refuses_other_secrets_and_other_types():
    signer, other = Signer(b"one"), Signer(b"two")
    key, payload = "v1:" + "1" * 64, b"payload"
    sig = signer.sign(key, payload)
    assert signer.signed_here(key, signer.kid, payload, sig) is True
    assert other.signed_here(key, signer.kid, payload, sig) is False          # kid is not its own
    assert signer.signed_here(key, other.kid, payload, sig) is False
    for bad in [(key.encode(), signer.kid, payload, sig), (key, None, payload, sig), (key, signer.kid, "payload", sig),
                (key, signer.kid, payload, None)]:
        assert signer.signed_here(*bad) is False


def test_tampered_payload_is_a_miss_counted_and_deleted(cache, settings, caplog):
    key = cache.key_for(BASE_REQUEST)
    cache.put(key, response())
    conn = raw(settings.cache_path)
    try:
        payload = conn.execute("SELECT payload FROM entries WHERE key = ?", (key,)).fetchone()[0]
        evil = payload.replace(b"The answer is 42.", b"The answer is 43.")
        assert evil != payload
        conn.execute("UPDATE entries SET payload = ? WHERE key = ?", (evil, key))
    finally:
        conn.close()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert cache.get(key) is None
        assert cache.get(key) is None                 # second lookup: row already gone
    assert cache.stats()["integrity_failures"] == 1
    assert raw_query(settings.cache_path, "SELECT COUNT(*) FROM entries") == [(0,)]
    assert sum("integrity check" in r.getMessage() for r in caplog.records) == 1


def test_byte_flipped_on_disk_is_detected(settings):
    marker = "DISTINCTIVE-PAYLOAD-0xC0FFEE"
    with ResponseCache(settings) as c:
        key = c.key_for(BASE_REQUEST)
        c.put(key, response(text=f"prefix {marker} suffix"))
    # the last connection closed: WAL checkpointed into the main file
    data = bytearray(settings.cache_path.read_bytes())
    at = data.find(marker.encode())
    assert at > 0 and data.find(marker.encode(), at + 1) == -1
    data[at + 12] ^= 0x01
    settings.cache_path.write_bytes(bytes(data))
    with ResponseCache(settings) as c:
        assert c.get(key) is None
        stats = c.stats()
        assert (stats["integrity_failures"], stats["entries"]) == (1, 0)


def test_swapped_payloads_are_detected(cache, settings):
    k1, k2 = cache.key_for({"model": "a"}), cache.key_for({"model": "b"})
    cache.put(k1, response(text="answer one"))
    cache.put(k2, response(text="answer two"))
    conn = raw(settings.cache_path)
    try:
        select = "SELECT payload, sig FROM entries WHERE key = ?"
        (p1, s1), (p2, s2) = conn.execute(select, (k1,)).fetchone(), conn.execute(select, (k2,)).fetchone()
        conn.execute("UPDATE entries SET payload = ?, sig = ? WHERE key = ?", (p2, s2, k1))
        conn.execute("UPDATE entries SET payload = ?, sig = ? WHERE key = ?", (p1, s1, k2))
    finally:
        conn.close()
    assert sorted(cache.verify()) == sorted([k1, k2])
    assert cache.get(k1) is None and cache.get(k2) is None
    assert cache.stats()["integrity_failures"] == 2


def test_verify_reports_without_deleting(cache, settings):
    keys = [cache.key_for({"model": f"m{i}"}) for i in range(5)]
    for k in keys:
        cache.put(k, response(text=f"answer {k}"))
    assert cache.verify() == []
    conn = raw(settings.cache_path)
    try:
        conn.execute("UPDATE entries SET sig = zeroblob(32) WHERE key = ?", (keys[1],))
        conn.execute("UPDATE entries SET payload = CAST('not json' AS BLOB) WHERE key = ?", (keys[3],))
    finally:
        conn.close()
    assert sorted(cache.verify()) == sorted([keys[1], keys[3]])
    assert cache.stats()["entries"] == 5                      # verify() only reports
    assert cache.stats()["integrity_failures"] == 0
    assert [cache.get(k) is not None for k in keys] == [True, False, True, False, True]
    assert cache.verify() == []


def test_signed_expiry_cannot_be_extended(cache, settings, clock):
    key = cache.key_for(BASE_REQUEST)
    cache.put(key, response())
    conn = raw(settings.cache_path)
    try:   # the unsigned index copies do not matter: the signed payload decides
        conn.execute("UPDATE entries SET expires = 9e12, created = 9e12")
    finally:
        conn.close()
    clock.now = T0 + 7 * 24 * 3600
    assert cache.get(key) is None
    assert cache.stats()["integrity_failures"] == 0


def test_a_signed_row_in_another_versions_format_is_a_plain_miss(cache, caplog):
    """A newer or older claude-force-nb sharing the home writes rows this one cannot read:
    they are misses (not tampering), verify() does not flag them, and a put replaces them."""
    key = cache.key_for(BASE_REQUEST)
    foreign = b'["cfnb/1","code-reviewer",0.01]\nan answer in the earlier format'
    sig = cache._signer.sign(key, foreign)
    conn = sqlite3.connect(cache.path)
    conn.execute(
        "INSERT INTO entries(id, key, kid, payload, sig, created, expires, last_access, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (rowid_of(key), key, cache.kid, foreign, sig, T0, None, T0, len(foreign)),
    )
    conn.commit()
    conn.close()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert cache.get(key) is None
        assert cache.verify() == []
        assert cache.entries() == []
    s = cache.stats()
    assert (s["misses"], s["integrity_failures"], s["entries"]) == (1, 0, 1)
    assert not caplog.records
    assert cache.put(key, response())
    assert cache.get(key).text == response().text and cache.stats()["entries"] == 1


def test_a_row_rewritten_with_other_sql_types_is_judged_by_its_bytes_never_a_crash(settings):
    with ResponseCache(settings) as cache:
        same, changed = cache.key_for({"model": "a"}), cache.key_for({"model": "b"})
        for key in (same, changed):
            cache.put(key, CachedResponse(text="t", stop_reason="end_turn", usage=Usage(), model="m", cost_usd=0.0))
        conn = sqlite3.connect(settings.cache_path)
        # the binary payload is not UTF-8: as TEXT it would break a plain fetch
        conn.execute("UPDATE entries SET payload = CAST(payload AS TEXT), sig = CAST(sig AS TEXT) WHERE key = ?", (same,))
        conn.execute("UPDATE entries SET payload = 42 WHERE key = ?", (changed,))
        conn.commit()
        conn.close()
        assert cache.verify() == [changed]
        assert cache.get(same).text == "t"                  # the signed bytes are unchanged
        assert cache.get(changed) is None
        assert cache.stats()["integrity_failures"] == 1
        assert [row["cache_key"] for row in cache.entries()] == [same]


def test_rotating_the_secret_makes_misses_not_errors(settings):
    with ResponseCache(settings) as old:
        old_key = old.key_for(BASE_REQUEST)
        old.put(old_key, response())
    with ResponseCache(settings.replace(cache_secret=b"rotated secret")) as new:
        assert new.key_for(BASE_REQUEST) != old_key
        assert new.get(new.key_for(BASE_REQUEST)) is None
        assert new.get(old_key) is None                  # the old row: other kid → plain miss
        assert new.verify() == []
        s = new.stats()
        assert (s["integrity_failures"], s["misses"], s["entries"]) == (0, 2, 1)
        assert new.entries() == []
        assert new.put(new.key_for(BASE_REQUEST), response())
    with ResponseCache(settings) as old:                 # rotating back still works
        assert old.get(old_key) is not None


def test_secret_argument_wins(settings):
    with ResponseCache(settings, secret=b"explicit") as a, ResponseCache(settings.replace(cache_secret=b"explicit")) as b:
        assert a.key_for(BASE_REQUEST) == b.key_for(BASE_REQUEST)
    with ResponseCache(settings, secret="explicit") as c:
        assert c.key_for(BASE_REQUEST) == a.key_for(BASE_REQUEST)
