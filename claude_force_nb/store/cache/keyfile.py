"""The cache's master secret: an explicit value, ``CLAUDE_FORCE_CACHE_SECRET``, or a key file.

The key file (``settings.key_path``) holds 32 random bytes. It is created 0600 with
``O_EXCL`` in a 0700 directory outside the data dir, so several kernels starting at once
agree on one key (the losers of the race read the winner's file). Like ssh, a key file
that is not a regular file, belongs to another user, or is readable by group or others is
refused with the command that fixes it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from pathlib import Path

from ...core.errors import ConfigurationError, InsecurePathError
from ...core.settings import Settings, ensure_private_dir

__all__ = ["KEY_FILE_BYTES", "load_or_create_key_file", "master_secret"]

KEY_FILE_BYTES = 32
CREATOR_WAIT_S = 2.0            # how long a reader waits for a creator to write the key


def master_secret(settings: Settings, secret: bytes | str | None = None) -> bytes:
    """``secret`` if given, else ``settings.cache_secret``, else the key file (created if absent)."""
    if secret is None:
        secret = settings.cache_secret
    if secret is None:
        ensure_private_dir(Path(settings.secrets_dir))
        return load_or_create_key_file(Path(settings.key_path))
    if isinstance(secret, str):
        secret = secret.encode()
    if not secret:
        raise ConfigurationError(
            "The cache secret is empty: set CLAUDE_FORCE_CACHE_SECRET to a long random value or unset it."
        )
    return bytes(secret)


def load_or_create_key_file(path: Path) -> bytes:
    """The master secret from ``path``, creating it (0600, O_EXCL) when absent. Race-safe."""
    path = Path(path)
    ensure_private_dir(path.parent)
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        return _read_key_file(path)         # another kernel won the race (or made it long ago)
    key = os.urandom(KEY_FILE_BYTES)
    try:
        with open(fd, "wb") as file:
            file.write(key)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return key


def _read_key_file(path: Path) -> bytes:
    """Read an existing key file; wait briefly for a creator that has not written it yet."""
    deadline = time.monotonic() + CREATOR_WAIT_S
    while True:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            _check_key_file(fd, path)
        except BaseException:
            os.close(fd)
            raise
        with open(fd, "rb") as file:
            data = file.read()
        if len(data) >= KEY_FILE_BYTES:
            return data
        if time.monotonic() >= deadline:
            raise ConfigurationError(
                f"{path} holds {len(data)} bytes, not a {KEY_FILE_BYTES}-byte key: delete it to generate a "
                "new one (existing cache entries then become misses)."
            )
        time.sleep(0.01)


def _check_key_file(fd: int, path: Path) -> None:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise InsecurePathError(f"{path} is not a regular file: remove it so a new cache key can be created.")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise InsecurePathError(
            f"{path} belongs to another user (uid {st.st_uid}): remove it (a new key is generated) "
            "or set CLAUDE_FORCE_CACHE_SECRET."
        )
    if st.st_mode & 0o077:
        raise InsecurePathError(
            f"{path} is accessible by group or others (mode {stat.S_IMODE(st.st_mode):04o}): "
            f"run `chmod 600 {path}`."
        )
