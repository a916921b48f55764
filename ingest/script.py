"""A Lua script run over Redis connections of its own: ingest's one Redis call a request.

redis-py's pool checks every connection it lends for unread data (a poll, which under gevent is a
switch to the hub and back) and wraps each call in its retry, observability and deprecation layers:
about 50 us of a web worker's CPU a call under gevent, measured against sending EVALSHA on a
connection directly (docs/performance-notes.md). `ScriptRunner` keeps idle
connections in a list (greenlets and threads take and give back whole connections), sends EVALSHA
(packed by hiredis in one call: redis-py's packer walks the arguments in Python first) and reads
the answer. A connection that fails in any way is closed, never lent again. It does not retry: a
write whose answer was lost may have happened, so the error goes to the client (503), whose resend
carries the same message ids. A Redis that forgot the script (restarted, or SCRIPT FLUSH) is
given it again, once. The price of skipping the pool's poll: a connection that Redis dropped (a
restart) is found dead by the one call that uses it next, which answers 503 (the SDK resends), not
before; the pool's poll would have replaced it first. Idle connections are kept, as many as were
ever lent at once. On a Redis Cluster (`script_runner`), the cluster client's own script object
runs it instead: it routes each call to the node of its keys' slot and follows failovers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import hiredis
import redis
from redis.connection import Connection

from models.redis_client import is_cluster

ScriptArgument = str | bytes | int | float


def script_runner(client: Any, source: str) -> Callable[[list[str | bytes], list[ScriptArgument]], Any]:
    """What runs `source` with (keys, args): a ScriptRunner on a single Redis, redis-py's script
    object on a Redis Cluster."""
    return client.register_script(source) if is_cluster(client) else ScriptRunner(client, source)


class ScriptRunner:
    def __init__(self, client: redis.Redis, source: str) -> None:
        self.source = source
        self.sha = client.register_script(source).sha
        self.connection_class = client.connection_pool.connection_class
        self.connection_kwargs = client.connection_pool.connection_kwargs
        self.idle: list[Connection] = []

    def __call__(self, keys: list[str | bytes], args: list[ScriptArgument]) -> Any:
        try:
            connection = self.idle.pop()
        except IndexError:  # every connection is lent: one more
            connection = self.connection_class(**self.connection_kwargs)
        try:
            answer = self._run(connection, keys, args)
        except BaseException:
            connection.disconnect()
            raise
        self.idle.append(connection)
        return answer

    def _run(self, connection: Connection, keys: list[str | bytes], args: list[ScriptArgument]) -> Any:
        # hiredis's stub declares a one-element tuple; it takes any number of arguments.
        command = [hiredis.pack_command(("EVALSHA", self.sha, len(keys), *keys, *args))]  # type: ignore[arg-type]
        connection.send_packed_command(command)
        try:
            return connection.read_response()
        except redis.exceptions.NoScriptError:
            connection.send_command("SCRIPT", "LOAD", self.source)
            connection.read_response()
            connection.send_packed_command(command)
            return connection.read_response()

    def close(self) -> None:
        while self.idle:
            self.idle.pop().disconnect()
