"""The browser snippet (web/static/adtivity.js), run by Node against the real processes: it batches
events with message ids and sent_at, follows an EIP-1193 provider's connects and transactions, and
sends what is left with sendBeacon (write key in the body) when the page is hidden."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import requests

from models.clickhouse import clickhouse_client
from tests.pipeline_helpers import setup_company
from tests.processes import wait_for

pytestmark = [pytest.mark.processes, pytest.mark.skipif(shutil.which("node") is None, reason="needs node")]
WALLET = "0x" + "ab" * 20
RUNNER = """
globalThis.window = globalThis;
const store = {};
globalThis.localStorage = { getItem: (k) => (k in store ? store[k] : null), setItem: (k, v) => { store[k] = v; } };
globalThis.location = { href: "https://shop.example.com/pricing?utm_source=newsletter", pathname: "/pricing" };
const listeners = {};
globalThis.document = { referrer: "", title: "Pricing", visibilityState: "visible",
                        addEventListener: (name, f) => { listeners[name] = f; } };
const beacons = [];
globalThis.navigator = { language: "en-US", sendBeacon: (url, body) => {
  beacons.push(fetch(url, { method: "POST", body, headers: { "Content-Type": "text/plain;charset=UTF-8" } })
    .then((r) => { if (r.status !== 200) throw new Error("beacon " + r.status); }));
  return true; } };
require(process.argv[2]);
(async () => {
  const adtivity = Adtivity.init({ writeKey: process.argv[3], host: process.argv[4], flushAt: 3 });
  const handlers = {};
  const provider = { on: (name, f) => { handlers[name] = f; }, request: async ({ method }) => ({
    eth_chainId: "0x89", eth_requestAccounts: ["__WALLET__"], eth_sendTransaction: "0x" + "12".repeat(32) })[method] };
  adtivity.watchWallet(provider);
  await new Promise((r) => setTimeout(r, 10));
  adtivity.page();
  adtivity.track("Signup", { plan: "pro" });
  await provider.request({ method: "eth_requestAccounts" });  // the third event: a batch goes by fetch
  await provider.request({ method: "eth_sendTransaction", params: [{ from: "__WALLET__", to: "0x" + "cd".repeat(20), value: "0x10" }] });
  adtivity.identify("user-42", { plan: "pro" });
  document.visibilityState = "hidden";
  listeners.visibilitychange();  // the rest by sendBeacon
  await Promise.all(beacons);
  clearInterval(adtivity.timer);
  console.log(JSON.stringify({ left: adtivity.queue.length, beacons: beacons.length }));
})().catch((e) => { console.error(e); process.exit(1); });
""".replace("__WALLET__", WALLET)


def test_the_browser_snippet_sends_batches_wallet_events_and_a_beacon(system, settings, tmp_path):
    base, _ = system
    company, key, _ = setup_company(base)
    served = requests.get(f"{base}/sdk/adtivity.js", timeout=10)
    assert served.status_code == 200 and "javascript" in served.headers["content-type"]
    snippet = tmp_path / "adtivity.js"
    snippet.write_bytes(served.content)
    runner = tmp_path / "runner.cjs"
    runner.write_text(RUNNER)
    done = subprocess.run(["node", str(runner), str(snippet), key, base], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert '"left":0' in done.stdout and '"beacons":1' in done.stdout

    client = clickhouse_client(settings.clickhouse_url)

    def rows() -> list:
        return client.query(
            "SELECT type, name, wallet_address, chain_id, tx_value, user_id, page_path, sent_at IS NOT NULL "
            "FROM events WHERE company_id = toUUID(%(c)s) ORDER BY event_time, type",
            parameters={"c": company},
        ).result_rows

    wait_for(lambda: len(rows()) == 5, 30, "the snippet's five events in ClickHouse")
    stored = rows()
    assert {row[0] for row in stored} == {"page", "track", "wallet_connect", "transaction", "identify"}
    assert all(row[7] for row in stored) and all(row[6] == "/pricing" for row in stored)
    transaction = next(row for row in stored if row[0] == "transaction")
    assert transaction[2] == WALLET and transaction[3] == "137" and transaction[4] == "16"
    assert next(row for row in stored if row[0] == "identify")[5] == "user-42"
