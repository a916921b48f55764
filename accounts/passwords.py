"""Passwords: the policy a new one must meet, and bcrypt work with a bound on how much of it one
process does at once.

bcrypt takes a quarter of a second of CPU at 12 rounds. In a gevent web worker it would stop every
other connection of that worker meanwhile, so it runs in gevent's thread pool there (bcrypt releases
the GIL); elsewhere (tests, workers, the CLI) it runs in the caller's thread. A flood of password
checks (logins, password changes) would still take every core from everything else the process
serves: at most PASSWORD_HASH_CONCURRENCY run at once, and a check that cannot start within
PASSWORD_HASH_WAIT_SECONDS is refused as Busy (503, retry shortly) instead of queueing without end.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import TypeVar, cast

import bcrypt
from gevent import get_hub, monkey

from adtivity.errors import Busy

T = TypeVar("T")
BCRYPT_MAX_BYTES = 72


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def password_problem(password: str, *, min_length: int) -> str | None:
    """Why `password` is refused, or None when it is acceptable."""
    if len(password) < min_length:
        return f"the password must be at least {min_length} characters"
    if len(password.encode()) > BCRYPT_MAX_BYTES:
        return f"the password must be at most {BCRYPT_MAX_BYTES} bytes"
    if password.lower() in common_passwords():
        return "the password is too common"
    return None


def off_the_hub(function: Callable[..., T], *args: object) -> T:
    """`function(*args)` in gevent's thread pool when this process is gevent-patched, else here."""
    if monkey.is_module_patched("threading"):
        return cast(T, get_hub().threadpool.apply(function, args))
    return function(*args)


class PasswordHasher:
    """bcrypt hashing and checking for one process, at most `concurrency` at a time. Build it after
    gevent has patched the process (the web builds it with its app), so a wait for a turn lets the
    worker's other connections run."""

    def __init__(self, *, rounds: int, concurrency: int, wait_seconds: float) -> None:
        self.rounds = rounds
        self.wait_seconds = wait_seconds
        self._turns = threading.BoundedSemaphore(concurrency)
        self._dummy_hash: str | None = None

    def _bounded(self, function: Callable[..., T], *args: object) -> T:
        if not self._turns.acquire(timeout=self.wait_seconds):
            raise Busy(1, "too many password checks are under way; retry shortly")
        try:
            return off_the_hub(function, *args)
        finally:
            self._turns.release()

    def hash(self, password: str) -> str:
        hashed: bytes = self._bounded(bcrypt.hashpw, password.encode(), bcrypt.gensalt(self.rounds))
        return hashed.decode()

    def verify(self, password: str, password_hash: str | None) -> bool:
        """Whether `password` matches `password_hash`. With no hash (an unknown account) a random one
        is checked instead, so the answer takes as long whether the account exists or not."""
        encoded = password.encode()
        if len(encoded) > BCRYPT_MAX_BYTES:
            return False
        if password_hash is None:
            self._bounded(bcrypt.checkpw, encoded, self._dummy().encode())
            return False
        return bool(self._bounded(bcrypt.checkpw, encoded, password_hash.encode()))

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self.hash(secrets.token_hex(16))
        return self._dummy_hash
