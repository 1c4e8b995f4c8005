"""The signed response cache, one module per job (read them in this order):

- ``keys``: canonical JSON, ``key_for`` (an HMAC of the request) and the row id of a key
- ``signing``: the subkeys of the master secret and each row's signature
- ``payload``: ``CachedResponse`` and the binary format it is stored in
- ``keyfile``: where the master secret comes from (argument, environment, key file)
- ``schema``: the file's tables as named migrations, and the checks on open
- ``table``: the SQL on the entries table (lookups, upserts, hit counts, eviction)
- ``counters``: per-process counters and the hit counts not yet written
- ``database``: the file: connections, corruption recovery, write transactions
- ``store``: ``ResponseCache``, which puts them together

Design notes and measurements: facts/cache-design.md.
"""

from .keyfile import load_or_create_key_file
from .keys import canonical_json, rowid_of
from .payload import CachedResponse
from .store import ENTRY_COLUMNS, ResponseCache

__all__ = ["ENTRY_COLUMNS", "CachedResponse", "ResponseCache", "canonical_json", "load_or_create_key_file", "rowid_of"]
