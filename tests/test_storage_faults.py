"""Storage faults over real SQLite files: nothing a disk does fails a call or loses a row.

How each fault is made for real (the tests run as root, for whom chmod does not stop writes):
- a full disk: SQLite's ``PRAGMA max_page_count`` caps a file so a write that needs one more
  page fails with SQLITE_FULL, exactly the error a full disk gives (``ConnectionPool.set_max_pages``
  applies it to every connection of a store); lifting the cap is "space returns";
- a home that cannot be written: a data directory below a regular file (ENOTDIR, whoever you
  are), and, in a real process of an unprivileged user, a directory without write permission;
- a deleted file: ``os.unlink`` on the database (and its -wal/-shm) while it is open.
"""

from __future__ import annotations

import threading
from pathlib import Path

from claude_force_nb.core.settings import Settings
from claude_force_nb.store.ledger import Ledger


def settings_at(home: Path) -> Settings:
    return Settings(data_dir=home, secrets_dir=home / "secrets", cache_secret=b"storage-faults-secret")


def test_opening_an_existing_file_writes_nothing(tmp_path):
    """On a full disk any write fails: a thread opening its connection must only read (the
    page-size and auto-vacuum pragmas used to rewrite the header, so every report raised)."""
    with Ledger(settings_at(tmp_path / "home")) as ledger:
        wal = Path(f"{ledger.path}-wal")
        before = wal.stat().st_size
        reader = threading.Thread(target=ledger.rows)
        reader.start()
        reader.join()
        assert wal.stat().st_size == before
