"""Ingest's Redis call over connections of its own (ingest/script.py), on the real Redis: the
script reloaded when Redis forgot it, a failed connection dropped, nothing retried."""

from __future__ import annotations

import pytest
import redis

from ingest.script import ScriptRunner
from tests.ingest_helpers import streamed, tenant

ECHO = "return {KEYS[1], ARGV[1]}"


def test_a_script_redis_forgot_is_given_again(redis_client):
    runner = ScriptRunner(redis_client, ECHO)
    assert runner(["k"], ["a"]) == [b"k", b"a"]
    redis_client.script_flush()
    assert runner(["k"], [2]) == [b"k", b"2"]
    assert len(runner.idle) == 1  # the same connection, lent again
    runner.close()


def test_a_failed_connection_is_closed_and_the_call_not_retried(redis_client):
    counter = "test:script-runner:calls"
    redis_client.delete(counter)
    runner = ScriptRunner(redis_client, "return redis.call('INCR', KEYS[1])")
    assert runner([counter], []) == 1
    lent = runner.idle[0]
    lent.send_command("CLIENT", "SETNAME", "runner-under-test")
    lent.read_response()
    killed = [c for c in redis_client.client_list() if c["name"] == "runner-under-test"]
    assert len(killed) == 1
    redis_client.client_kill(killed[0]["addr"])
    with pytest.raises(redis.ConnectionError):
        runner([counter], [])
    assert runner.idle == []  # the dead connection is not lent again
    assert runner([counter], []) == 2  # a new connection; the failed call did not run twice
    runner.close()


def test_ingest_writes_after_redis_forgot_its_script(api, redis_client, settings):
    t = tenant(api)
    assert (
        api.post("/v1/events", auth=t.write_key, json={"type": "track", "name": "a", "user_id": "u"}).status_code == 200
    )
    redis_client.script_flush()
    assert (
        api.post("/v1/events", auth=t.write_key, json={"type": "track", "name": "b", "user_id": "u"}).status_code == 200
    )
    assert sorted(event.name for event in streamed(redis_client, settings)) == ["a", "b"]
