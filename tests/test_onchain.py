"""On-chain verification against a real local chain (anvil): transactions sent for real, reported
through the SDK's event format (some honestly, some with false statuses, values and made-up hashes),
blocks mined, reorgs forced; every state, the cost in JSON-RPC calls, and the stored answers checked."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
import subprocess
import sys

import pytest

from adtivity.jobs import Jobs, redis_broker
from models import redis_keys
from models.chain import ChainToken, ChainTransaction, disagrees
from models.clickhouse import clickhouse_client
from models.db import database
from rollups.compute import rollup_company_now
from scheduler.leader import Leadership
from scheduler.main import build_scheduler
from tests.chain_helpers import CHAIN_ID, LocalChain
from tests.ingest_helpers import tenant
from tests.pipeline_helpers import drain, run_queued_jobs, send
from tests.processes import ROOT
from workers.chain import run_round

CONFIRMATIONS = 3


@pytest.fixture
def chain():
    local = LocalChain()
    yield local
    local.stop()


@pytest.fixture
def chain_settings(settings, chain):
    return dataclasses.replace(
        settings,
        chain_rpc_urls=(f"{CHAIN_ID}={chain.url}",),
        chain_confirmations=(f"{CHAIN_ID}={CONFIRMATIONS}",),
        chain_default_block_seconds=0,  # looked up at once (test_the_first_look_waits_...: the wait)
        chain_poll_seconds=5,
        chain_unseen_timeout_seconds=600,
    )


def report(api, key: str, tx_hash: str, **fields) -> None:
    """A transaction event as the SDK sends it."""
    send(
        api,
        key,
        [{"type": "transaction", "anonymous_id": "visitor", "chain_id": CHAIN_ID, "tx_hash": tx_hash, **fields}],
    )


def one_reported_transfer(api, chain, settings, redis_client):
    """A new company, a transfer mined on the chain and reported as submitted: (tenant, hash, ClickHouse)."""
    t = tenant(api)
    tx_hash = chain.send(chain.accounts[0], chain.accounts[1], 10**15)
    report(api, t.write_key, tx_hash, status="submitted")
    drain(settings, redis_client)
    return t, tx_hash, clickhouse_client(settings.clickhouse_url)


def rows(company_id: str) -> dict[str, ChainTransaction]:
    with database.connection_context():
        return {row.tx_hash: row for row in ChainTransaction.select().where(ChainTransaction.company_id == company_id)}


def stored_states(settings, company_id: str) -> dict[str, tuple]:
    """What ClickHouse has: the newest version of each hash."""
    answer = clickhouse_client(settings.clickhouse_url).query(
        "SELECT tx_hash, argMax(state, version), argMax(final, version), argMax(disagrees, version), "
        "argMax(value_num, version), argMax(transfer_amounts, version) FROM tx_verifications "
        "WHERE company_id = toUUID(%(c)s) GROUP BY tx_hash",
        parameters={"c": company_id},
    )
    return {row[0]: tuple(row[1:]) for row in answer.result_rows}


def test_each_reported_transaction_gets_the_state_the_chain_gives_it(api, chain, chain_settings, redis_client, clock):
    t = tenant(api)
    me, friend, broke = chain.accounts[0], chain.accounts[1], chain.accounts[3]
    token = chain.deploy_token(me, 1_000 * 10**6)
    plain = chain.send(me, friend, 10**18)
    transfer = chain.token_transfer(token, me, friend, 250 * 10**6)
    reverted = chain.token_transfer(token, broke, friend, 1)  # broke holds no tokens
    lying = chain.send(me, friend, 5 * 10**17)
    made_up = "0x" + secrets.token_hex(32)
    report(api, t.write_key, plain, **{"from": me, "to": friend, "value": "1", "status": "confirmed"})
    report(api, t.write_key, transfer, **{"from": me, "to": token.address, "value": "0", "status": "confirmed"})
    report(api, t.write_key, reverted, **{"from": broke, "status": "confirmed"})
    report(api, t.write_key, lying, **{"from": me, "to": friend, "value": "5", "status": "confirmed"})
    report(api, t.write_key, made_up, status="submitted")
    drain(chain_settings, redis_client)
    assert set(rows(t.company_id)) == {plain.lower(), transfer.lower(), reverted.lower(), lying.lower(), made_up}

    first = run_round(
        chain_settings, redis_client, clickhouse_client(chain_settings.clickhouse_url), CHAIN_ID, now=clock()
    )
    # Blocks 2 to 5 hold plain, transfer, reverted and lying: the first two have their 3 confirmations.
    assert first is not None and first["looked_up"] == 5 and first["finalized"] == {"confirmed": 2}
    mined = rows(t.company_id)
    assert mined[plain.lower()].confirmations == 4 and mined[plain.lower()].block_number == 2
    assert (mined[reverted.lower()].state, mined[reverted.lower()].confirmations) == ("pending", 2)
    assert (mined[lying.lower()].state, mined[lying.lower()].confirmations) == ("pending", 1)
    assert mined[made_up].block_number is None and mined[made_up].lookups == 1

    chain.mine(CONFIRMATIONS - 1)
    clock.advance(5)
    run_round(chain_settings, redis_client, clickhouse_client(chain_settings.clickhouse_url), CHAIN_ID, now=clock())
    final = rows(t.company_id)
    assert final[plain.lower()].state == "confirmed" and final[plain.lower()].final
    assert final[plain.lower()].value == 10**18 and final[plain.lower()].tx_from == me.lower()
    assert final[transfer.lower()].state == "confirmed"
    assert final[transfer.lower()].transfers == [
        {
            "token": token.address.lower(),
            "symbol": "TST",
            "from": me.lower(),
            "to": friend.lower(),
            "amount": str(250 * 10**6),
            "decimals": 6,
        }
    ]
    assert final[reverted.lower()].state == "reverted" and final[reverted.lower()].succeeded is False
    assert final[lying.lower()].state == "mismatch"
    assert final[made_up].state == "pending" and not final[made_up].final
    with database.connection_context():
        assert [(token.address.lower(), 6, "TST")] == [
            (row.address, row.decimals, row.symbol) for row in ChainToken.select()
        ]

    clock.advance(chain_settings.chain_unseen_timeout_seconds)
    run_round(chain_settings, redis_client, clickhouse_client(chain_settings.clickhouse_url), CHAIN_ID, now=clock())
    assert rows(t.company_id)[made_up].state == "not_found"

    states = stored_states(chain_settings, t.company_id)
    assert states[plain.lower()] == ("confirmed", 1, 0, 1.0, [])
    assert states[transfer.lower()] == ("confirmed", 1, 0, 0.0, [250.0])
    assert states[reverted.lower()][:3] == ("reverted", 1, 1)  # reported confirmed: the chain disagrees
    assert states[lying.lower()][:3] == ("mismatch", 1, 1)
    assert states[made_up][:3] == ("not_found", 1, 1)

    # The list to review: what each client said beside what the chain says.
    listed = f"/v1/companies/{t.company_id}/transactions"
    review = api.get(listed, auth=t.read_key, params={"disagrees": "true"}).json["items"]
    assert {item["tx_hash"]: item["state"] for item in review} == {
        reverted.lower(): "reverted",
        lying.lower(): "mismatch",
        made_up: "not_found",
    }
    lie = next(item for item in review if item["state"] == "mismatch")
    assert (lie["reported"]["value"], lie["chain"]["value_wei"], lie["disagrees"]) == ("5", str(5 * 10**17), True)
    confirmed = api.get(listed, auth=t.read_key, params={"state": "confirmed", "chain": CHAIN_ID}).json["items"]
    assert {item["tx_hash"] for item in confirmed} == {plain.lower(), transfer.lower()}
    pages, cursor = [], None
    while True:
        page = api.get(listed, auth=t.read_key, params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json
        pages.append([item["tx_hash"] for item in page["items"]])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [len(page) for page in pages] == [2, 2, 1] and len({h for page in pages for h in page}) == 5
    refused = api.get(listed, auth=t.read_key, params={"state": "lost"})
    assert refused.status_code == 400 and refused.json["error"]["code"] == "invalid_parameter"
    assert refused.json["error"]["message"].startswith("state: ")


def test_verifying_costs_about_one_call_per_transaction_when_blocks_hold_many(
    api, chain, chain_settings, redis_client, clock
):
    t = tenant(api)
    chain.automine(False)
    hashes = [chain.send(chain.accounts[i % 5], chain.accounts[9], 10**15 + i) for i in range(50)]
    chain.mine(1)
    for tx_hash in hashes:
        report(api, t.write_key, tx_hash, status="submitted")
    drain(chain_settings, redis_client)
    clickhouse = clickhouse_client(chain_settings.clickhouse_url)
    calls = run_round(chain_settings, redis_client, clickhouse, CHAIN_ID, now=clock())["calls"]
    chain.mine(CONFIRMATIONS)
    clock.advance(5)
    last = run_round(chain_settings, redis_client, clickhouse, CHAIN_ID, now=clock())
    assert last["finalized"] == {"confirmed": 50}
    # Receipts: 50; the block with its transactions, the head twice and the block's hash again: 4.
    assert calls + last["calls"] == 54


def test_a_reorged_transaction_goes_back_to_pending_and_is_confirmed_in_its_new_block(
    api, chain, chain_settings, redis_client, clock
):
    t = tenant(api)
    tx_hash, raw = chain.signed(0, chain.accounts[1], 10**16)
    chain.send_raw(raw)
    report(api, t.write_key, tx_hash, status="submitted")
    drain(chain_settings, redis_client)
    clickhouse = clickhouse_client(chain_settings.clickhouse_url)
    run_round(chain_settings, redis_client, clickhouse, CHAIN_ID, now=clock())
    before = rows(t.company_id)[tx_hash]
    assert before.block_number == 1 and before.confirmations == 1

    chain.rpc("anvil_reorg", [1, []])  # block 1 is replaced by one without the transaction
    clock.advance(5)
    reorged = run_round(chain_settings, redis_client, clickhouse, CHAIN_ID, now=clock())
    assert reorged["reorged"] == 1
    after = rows(t.company_id)[tx_hash]
    assert (after.state, after.block_number, after.block_hash, after.reorgs) == ("pending", None, None, 1)
    run_round(chain_settings, redis_client, clickhouse, CHAIN_ID, now=clock())
    assert rows(t.company_id)[tx_hash].block_number is None  # not in the chain now

    chain.mine(2)
    chain.send_raw(raw)  # broadcast again: mined in block 4
    clock.advance(60)
    run_round(chain_settings, redis_client, clickhouse, CHAIN_ID, now=clock())
    chain.mine(CONFIRMATIONS - 1)
    clock.advance(5)
    run_round(chain_settings, redis_client, clickhouse, CHAIN_ID, now=clock())
    final = rows(t.company_id)[tx_hash]
    assert (final.state, final.final, final.block_number) == ("confirmed", True, 4)
    assert final.block_hash != before.block_hash
    assert stored_states(chain_settings, t.company_id)[tx_hash][:2] == ("confirmed", 1)


def test_a_transaction_replaced_by_another_with_its_nonce_is_replaced(api, chain, chain_settings, redis_client, clock):
    t = tenant(api)
    chain.automine(False)
    first, raw = chain.signed(0, chain.accounts[1], 10**16, nonce=0, gas_price=2 * 10**9)
    chain.send_raw(raw)
    report(api, t.write_key, first, status="confirmed")
    drain(chain_settings, redis_client)
    clickhouse = clickhouse_client(chain_settings.clickhouse_url)
    run_round(chain_settings, redis_client, clickhouse, CHAIN_ID, now=clock())  # not mined: no receipt
    clock.advance(chain_settings.chain_poll_seconds)
    run_round(chain_settings, redis_client, clickhouse, CHAIN_ID, now=clock())  # still not: its pool entry
    pooled = rows(t.company_id)[first]
    assert (pooled.state, pooled.nonce, pooled.tx_from) == ("pending", 0, chain.accounts[0].lower())

    _, replacement = chain.signed(0, chain.accounts[2], 10**16, nonce=0, gas_price=5 * 10**9)
    chain.send_raw(replacement)  # the same nonce at a higher price: the pool drops the first
    chain.mine(1)
    clock.advance(60)
    run_round(chain_settings, redis_client, clickhouse, CHAIN_ID, now=clock())
    assert rows(t.company_id)[first].state == "replaced"
    assert stored_states(chain_settings, t.company_id)[first][:3] == ("replaced", 1, 1)


def test_a_hash_not_mined_is_looked_up_again_later_and_later(api, chain, chain_settings, redis_client, clock):
    t = tenant(api)
    report(api, t.write_key, "0x" + "ab" * 32, status="submitted")
    drain(chain_settings, redis_client)
    clickhouse = clickhouse_client(chain_settings.clickhouse_url)
    waits = []
    for _ in range(4):
        assert run_round(chain_settings, redis_client, clickhouse, CHAIN_ID, now=clock())["looked_up"] == 1
        row = rows(t.company_id)["0x" + "ab" * 32]
        waits.append((row.next_check_at - clock()).total_seconds())
        assert run_round(chain_settings, redis_client, clickhouse, CHAIN_ID, now=clock())["looked_up"] == 0
        clock.advance(waits[-1])
    assert [round(wait) for wait in waits] == [5, 10, 20, 40]


def test_each_company_gets_at_most_its_share_of_a_round(api, chain, chain_settings, redis_client, clock):
    busy, quiet = tenant(api), tenant(api)
    for i in range(5):
        report(api, busy.write_key, f"0x{i:064x}", status="submitted")
    report(api, quiet.write_key, "0x" + "cd" * 32, status="submitted")
    drain(chain_settings, redis_client)
    limited = dataclasses.replace(chain_settings, chain_max_checks_per_company=2)
    clickhouse = clickhouse_client(chain_settings.clickhouse_url)
    assert run_round(limited, redis_client, clickhouse, CHAIN_ID, now=clock())["looked_up"] == 3
    assert sum(row.lookups for row in rows(busy.company_id).values()) == 2
    assert rows(quiet.company_id)["0x" + "cd" * 32].lookups == 1


def test_a_chain_whose_endpoints_fail_backs_off_and_a_second_endpoint_takes_over(
    api, chain, chain_settings, redis_client, clock
):
    t, tx_hash, clickhouse = one_reported_transfer(api, chain, chain_settings, redis_client)
    dead = "http://127.0.0.1:9"  # nothing listens on the discard port here
    down = dataclasses.replace(chain_settings, chain_rpc_urls=(f"{CHAIN_ID}={dead}",))
    assert run_round(down, redis_client, clickhouse, CHAIN_ID, now=clock()) is None
    assert rows(t.company_id)[tx_hash].lookups == 0  # nothing was written
    assert redis_client.exists(redis_keys.chain_backoff(CHAIN_ID))
    assert run_round(chain_settings, redis_client, clickhouse, CHAIN_ID, now=clock()) is None  # backing off

    redis_client.delete(redis_keys.chain_backoff(CHAIN_ID))
    failover = dataclasses.replace(chain_settings, chain_rpc_urls=(f"{CHAIN_ID}={dead}", f"{CHAIN_ID}={chain.url}"))
    assert run_round(failover, redis_client, clickhouse, CHAIN_ID, now=clock())["looked_up"] == 1
    assert rows(t.company_id)[tx_hash].block_number == 1


@pytest.mark.parametrize(
    ("state", "reported", "expected"),
    [
        ("confirmed", "confirmed", False),
        ("confirmed", "failed", True),
        ("reverted", "confirmed", True),
        ("reverted", "submitted", False),
        ("reverted", "failed", False),
        ("replaced", "confirmed", True),
        ("not_found", "submitted", True),
        ("mismatch", "confirmed", True),
    ],
)
def test_what_counts_as_the_chain_disagreeing_with_the_client(state, reported, expected):
    assert disagrees(state, reported) is expected


def test_verified_figures_reach_the_rollups_the_funnels_and_the_query_api(
    api, chain, chain_settings, redis_client, clock
):
    t = tenant(api)
    me, friend, broke = chain.accounts[0], chain.accounts[1], chain.accounts[3]
    token = chain.deploy_token(me, 1_000 * 10**6)
    paid = chain.send(me, friend, 10**18)
    reverted = chain.token_transfer(token, broke, friend, 1)
    transfer = chain.token_transfer(token, me, friend, 250 * 10**6)
    people = {"alice": (paid, CHAIN_ID), "bob": (reverted, CHAIN_ID), "carol": (transfer, CHAIN_ID)}
    people["dave"] = ("0x" + "ee" * 32, "1")  # a chain with no endpoint: unverified
    for person, (tx_hash, chain_id) in people.items():
        send(
            api,
            t.write_key,
            [
                {"type": "page", "user_id": person, "properties": {"path": "/checkout"}},
                {
                    "type": "transaction",
                    "user_id": person,
                    "chain_id": chain_id,
                    "tx_hash": tx_hash,
                    "status": "confirmed",
                },
            ],
        )
    drain(chain_settings, redis_client)
    clickhouse = clickhouse_client(chain_settings.clickhouse_url)
    run_round(chain_settings, redis_client, clickhouse, CHAIN_ID, now=clock())
    chain.mine(CONFIRMATIONS)
    clock.advance(5)
    run_round(chain_settings, redis_client, clickhouse, CHAIN_ID, now=clock())
    rollup_company_now(chain_settings, redis_client, clickhouse, t.company_id)

    today = clock().date()
    span = {"from": (today - dt.timedelta(days=1)).isoformat(), "to": (today + dt.timedelta(days=1)).isoformat()}
    answer = api.get(f"/v1/companies/{t.company_id}/analytics/web3", auth=t.read_key, params=span)
    assert answer.status_code == 200, answer.text
    verified = answer.json["verified"]
    assert verified["transactions"] == 4
    assert {(row["chain_id"], row["state"], row["count"]) for row in verified["by_state"]} == {
        (CHAIN_ID, "confirmed", 2),
        (CHAIN_ID, "reverted", 1),
        ("1", "unverified", 1),
    }
    assert verified["disagreements"] == 1  # bob said confirmed; the chain says reverted
    assert verified["disagreements_by_state"] == [{"chain_id": CHAIN_ID, "state": "reverted", "count": 1}]
    assert {(row["chain_id"], row["token"], row["symbol"], float(row["volume"])) for row in verified["volume"]} == {
        (CHAIN_ID, "native", "", 1.0),
        (CHAIN_ID, token.address.lower(), "TST", 250.0),
    }
    # What the clients said, beside it: four "confirmed".
    assert sum(row["count"] for row in answer.json["transactions"] if row["status"] == "confirmed") == 4

    funnel = api.get(
        f"/v1/companies/{t.company_id}/drilldowns/funnel",
        auth=t.read_key,
        params={**span, "steps": "page:/checkout,transaction:confirmed"},
    )
    assert funnel.status_code == 200, funnel.text
    assert [step["people"] for step in funnel.json["steps"]] == [4, 2]

    by_state = api.post(
        f"/v1/companies/{t.company_id}/query",
        auth=t.read_key,
        json={
            "metrics": ["transactions", "users"],
            "dimensions": ["verification"],
            "date_range": [span["from"], span["to"]],
        },
    )
    assert by_state.status_code == 200, by_state.text
    assert {tuple(row["dimensions"]): row["metrics"][0] for row in by_state.json["results"]} == {
        ("confirmed",): 2,
        ("reverted",): 1,
        ("unverified",): 1,
    }


def test_the_leading_scheduler_has_each_configured_chain_verified_by_a_worker(api, chain, chain_settings, redis_client):
    t = tenant(api)
    tx_hash = chain.send(chain.accounts[0], chain.accounts[1], 10**15)
    report(api, t.write_key, tx_hash, status="submitted")
    drain(chain_settings, redis_client)
    leadership = Leadership(redis_client, lease_seconds=20)
    assert leadership.check()
    scheduler = build_scheduler(chain_settings, Jobs(redis_broker(chain_settings)), redis_client, leadership)
    job = scheduler.get_job("verify-chains")
    assert job.trigger.interval.total_seconds() == chain_settings.chain_poll_seconds
    job.func()
    run_queued_jobs(chain_settings)
    row = rows(t.company_id)[tx_hash]
    assert (row.block_number, row.lookups, row.confirmations) == (1, 0, 1)
    assert stored_states(chain_settings, t.company_id)[tx_hash][:2] == ("pending", 0)
    no_chains = dataclasses.replace(chain_settings, chain_rpc_urls=())
    jobs = build_scheduler(no_chains, Jobs(redis_broker(no_chains)), redis_client, leadership).get_jobs()
    assert "verify-chains" not in {job.id for job in jobs}


def test_a_round_of_mined_and_unmined_hashes_gives_each_its_own_answer(api, chain, chain_settings, redis_client, clock):
    t = tenant(api)
    mined = chain.send(chain.accounts[0], chain.accounts[1], 10**15)
    report(api, t.write_key, mined, status="submitted")
    drain(chain_settings, redis_client)
    clickhouse = clickhouse_client(chain_settings.clickhouse_url)
    run_round(chain_settings, redis_client, clickhouse, CHAIN_ID, now=clock())
    unmined = "0x" + "12" * 32
    report(api, t.write_key, unmined, status="submitted")  # due at once: before the mined one
    drain(chain_settings, redis_client)
    clock.advance(chain_settings.chain_poll_seconds)
    assert run_round(chain_settings, redis_client, clickhouse, CHAIN_ID, now=clock())["looked_up"] == 2
    found = rows(t.company_id)
    assert (found[mined].block_number, found[mined].confirmations, found[mined].lookups) == (1, 1, 0)
    assert (found[unmined].block_number, found[unmined].confirmations, found[unmined].lookups) == (None, 0, 1)


def test_a_mined_transaction_is_looked_up_again_when_its_confirmations_should_be_there(
    api, chain, chain_settings, redis_client, clock
):
    t, tx_hash, clickhouse = one_reported_transfer(api, chain, chain_settings, redis_client)
    poll = dt.timedelta(seconds=chain_settings.chain_poll_seconds)
    now = clock()
    run_round(chain_settings, redis_client, clickhouse, CHAIN_ID, now=now)  # its own block only: pace unknown
    assert rows(t.company_id)[tx_hash].next_check_at == now + poll

    chain.rpc("anvil_mine", ["0x1", "0xc"])  # the next block 12 s later: 1 of 3 confirmations to go
    now += poll
    run_round(chain_settings, redis_client, clickhouse, CHAIN_ID, now=now)
    row = rows(t.company_id)[tx_hash]
    assert row.confirmations == 2 and (row.next_check_at - now).total_seconds() == pytest.approx(12, abs=1)
    assert run_round(chain_settings, redis_client, clickhouse, CHAIN_ID, now=now + poll)["looked_up"] == 0
    chain.mine(1)
    final = run_round(chain_settings, redis_client, clickhouse, CHAIN_ID, now=row.next_check_at)
    assert final["finalized"] == {"confirmed": 1}


def test_the_first_look_waits_until_the_transaction_should_be_final(api, chain, chain_settings, redis_client, clock):
    paced = dataclasses.replace(chain_settings, chain_block_seconds=(f"{CHAIN_ID}=12",))
    t = tenant(api)
    now = clock()
    tx_hash = chain.send(chain.accounts[0], chain.accounts[1], 10**15)
    report(api, t.write_key, tx_hash, status="submitted")
    drain(paced, redis_client)
    clickhouse = clickhouse_client(paced.clickhouse_url)
    waiting = run_round(paced, redis_client, clickhouse, CHAIN_ID, now=now + dt.timedelta(seconds=30))
    assert (waiting["looked_up"], waiting["calls"]) == (0, 0)
    assert stored_states(paced, t.company_id)[tx_hash][:2] == ("pending", 0)  # exported as reported
    chain.mine(CONFIRMATIONS - 1)
    final = run_round(paced, redis_client, clickhouse, CHAIN_ID, now=now + dt.timedelta(seconds=3 * 12 + 2))
    assert final["finalized"] == {"confirmed": 1}
    assert final["calls"] == 3  # the head, the receipt, the block with its transactions


def test_the_chain_code_leaves_the_processes_recursion_limit_alone():
    """The web's JSON depth guard and every process's stack rely on Python's default limit (web3.py's
    py_ecc would raise it to 100,000 on import)."""
    probe = (
        "import sys; before = sys.getrecursionlimit(); import chain.verify, workers.chain, workers.main; "
        "print(before, sys.getrecursionlimit())"
    )
    answer = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    before, after = answer.stdout.split()
    assert before == after


def test_reports_in_the_original_sdk_format_are_verified_too(api, chain, chain_settings, redis_client, clock):
    """`POST /sdk/event` (transaction_hash, the value and status in properties): a made-up value is a mismatch."""
    t = tenant(api)
    honest = chain.send(chain.accounts[0], chain.accounts[1], 3 * 10**17)
    padded = chain.send(chain.accounts[0], chain.accounts[1], 10**17)
    chain.mine(CONFIRMATIONS)
    legacy = [
        {
            "type": "transaction",
            "eventName": "Deposit",
            "anonymous_id": "v1",
            "chain_id": CHAIN_ID,
            "transaction_hash": tx_hash,
            "properties": {"value": value, "status": "confirmed"},
        }
        for tx_hash, value in ((honest, "0.3"), (padded, "100"))
    ]
    answer = api.post("/sdk/event", headers={"X-API-Key": t.write_key}, json=legacy)
    assert answer.status_code == 200 and answer.json["accepted"] == 2, answer.text
    drain(chain_settings, redis_client)
    run_round(chain_settings, redis_client, clickhouse_client(chain_settings.clickhouse_url), CHAIN_ID, now=clock())
    found = rows(t.company_id)
    assert (found[honest].state, found[padded].state) == ("confirmed", "mismatch")
