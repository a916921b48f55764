"""The scheduler: one leading replica lets jobs through; a standby takes over when it dies."""

from __future__ import annotations

import os
import signal

import pytest

from models import redis_keys
from scheduler.leader import Leadership
from tests.processes import Process, process_env, wait_for


def test_one_replica_leads_and_a_standby_skips_its_jobs(redis_client):
    first, second = Leadership(redis_client, lease_seconds=5), Leadership(redis_client, lease_seconds=5)
    assert first.check() is True
    assert second.check() is False
    ran = []
    first.only_when_leading(lambda: ran.append("first"))()
    second.only_when_leading(lambda: ran.append("second"))()
    assert ran == ["first"]
    assert first.check() is True  # renewing keeps it
    first.resign()
    assert second.check() is True
    assert first.check() is False


def test_a_lapsed_lease_passes_to_the_standby(redis_client):
    first, second = Leadership(redis_client, lease_seconds=0.3), Leadership(redis_client, lease_seconds=0.3)
    assert first.check() and not second.check()
    wait_for(lambda: second.check(), 3, "the standby to take over")
    assert first.check() is False


@pytest.mark.processes
def test_a_standby_scheduler_process_takes_over_when_the_leader_is_killed(redis_client):
    env = process_env(SCHEDULER_LEASE_SECONDS="3", SCHEDULER_LEADER_CHECK_SECONDS="1", HEALTH_CHECK_SECONDS="60")
    replicas = [Process("scheduler", env), Process("scheduler", env)]
    try:
        for replica in replicas:
            replica.wait_ready()

        def holder_pid() -> int | None:
            value = redis_client.get(redis_keys.SCHEDULER_LEADER)
            return int(value.decode().split(":")[1]) if value else None

        wait_for(lambda: holder_pid() in {r.popen.pid for r in replicas}, 10, "a leader")
        leader = next(r for r in replicas if r.popen.pid == holder_pid())
        standby = next(r for r in replicas if r is not leader)
        os.kill(leader.popen.pid, signal.SIGKILL)
        wait_for(lambda: holder_pid() == standby.popen.pid, 10, "the standby to lead")
    finally:
        for replica in replicas:
            replica.stop()
