"""store/cache/keyfile.py: the master secret's key file is private, race-safe and checked."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from claude_force_nb.core.errors import ConfigurationError, InsecurePathError
from claude_force_nb.store.cache import ResponseCache, keyfile, load_or_create_key_file
from claude_force_nb.store.cache.keyfile import master_secret

from .cache_fixtures import BASE_REQUEST, _fresh_warnings, keyfile_settings, response, settings  # noqa: F401 (fixtures)


def test_key_file_created_private_and_reused(keyfile_settings):
    with ResponseCache(keyfile_settings) as c:
        key = c.key_for(BASE_REQUEST)
        c.put(key, response())
    path = keyfile_settings.key_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(Path(keyfile_settings.data_dir).stat().st_mode) == 0o700
    assert len(path.read_bytes()) == 32
    assert path.parent != keyfile_settings.cache_path.parent       # never next to the data
    with ResponseCache(keyfile_settings) as c:
        assert c.key_for(BASE_REQUEST) == key
        assert c.get(key) is not None


def test_key_file_readable_by_others_is_refused(keyfile_settings):
    path = keyfile_settings.key_path
    path.parent.mkdir(parents=True, mode=0o700)
    path.write_bytes(os.urandom(32))
    path.chmod(0o644)
    with pytest.raises(InsecurePathError) as info:
        ResponseCache(keyfile_settings)
    assert str(path) in str(info.value) and f"chmod 600 {path}" in str(info.value)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_key_file_owned_by_another_user_is_refused(keyfile_settings):
    path = keyfile_settings.key_path
    path.parent.mkdir(parents=True, mode=0o700)
    path.write_bytes(os.urandom(32))
    path.chmod(0o600)
    os.chown(path, 65534, 65534)
    with pytest.raises(InsecurePathError, match="another user"):
        ResponseCache(keyfile_settings)


def test_a_key_file_that_is_not_a_regular_file_is_refused(keyfile_settings):
    keyfile_settings.key_path.mkdir(parents=True, mode=0o700)
    with pytest.raises(InsecurePathError, match="not a regular file"):
        ResponseCache(keyfile_settings)


def test_home_writable_by_others_is_refused(keyfile_settings):
    home = Path(keyfile_settings.data_dir)
    home.mkdir(mode=0o700)
    home.chmod(0o777)
    with pytest.raises(InsecurePathError):
        ResponseCache(keyfile_settings)


def test_key_file_creation_race(tmp_path):
    path = tmp_path / "secrets" / "cache.key"
    barrier = threading.Barrier(8)
    results: list[bytes] = []

    def worker():
        barrier.wait()
        results.append(load_or_create_key_file(path))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len(set(results)) == 1 and len(results[0]) == 32


def test_half_written_key_file_is_waited_for(tmp_path):
    path = tmp_path / "secrets" / "cache.key"
    path.parent.mkdir(mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)   # a creator that has not written yet
    key = os.urandom(32)
    timer = threading.Timer(0.1, lambda: (os.write(fd, key), os.close(fd)))
    timer.start()
    try:
        assert load_or_create_key_file(path) == key
    finally:
        timer.join()


def test_a_short_key_file_is_reported_with_the_fix(keyfile_settings, monkeypatch):
    monkeypatch.setattr(keyfile, "CREATOR_WAIT_S", 0.0)        # no creator is coming
    path = keyfile_settings.key_path
    path.parent.mkdir(parents=True, mode=0o700)
    path.write_bytes(b"short")
    path.chmod(0o600)
    with pytest.raises(ConfigurationError, match="holds 5 bytes, not a 32-byte key: delete it"):
        ResponseCache(keyfile_settings)


def test_master_secret_order(keyfile_settings, settings):
    assert master_secret(settings, b"explicit") == b"explicit"
    assert master_secret(settings, "explicit") == b"explicit"
    assert master_secret(settings) == settings.cache_secret
    assert master_secret(keyfile_settings) == keyfile_settings.key_path.read_bytes()
    with pytest.raises(ConfigurationError, match="secret is empty"):
        master_secret(settings, b"")
