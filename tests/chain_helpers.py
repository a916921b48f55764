"""A real local EVM chain for the on-chain verification tests: anvil (installed by bin/services from
bin/localchain) on a free port, driven with web3.py, and the test ERC-20 token of tests/contracts
compiled by solc-js (once per source, kept under .data/contracts)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import requests
from eth_account import Account
from web3 import HTTPProvider, Web3

from tests.processes import ROOT, free_port, server_env

LOCALCHAIN = ROOT / "bin" / "localchain" / "node_modules"
ANVIL = LOCALCHAIN / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
SOLCJS = LOCALCHAIN / ".bin" / "solcjs"
CONTRACTS = ROOT / "tests" / "contracts"
CHAIN_ID = "31337"
# anvil's well-known development accounts (from its default mnemonic): keys that hold test ether only.
DEV_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
)


def compiled(name: str) -> tuple[list[dict[str, Any]], str]:
    """(ABI, deployment bytecode) of tests/contracts/<name>.sol."""
    source = (CONTRACTS / f"{name}.sol").read_bytes()
    out = ROOT / ".data" / "contracts" / hashlib.sha256(source).hexdigest()[:16]
    stem = out / f"{name}_sol_{name}"
    if not Path(f"{stem}.bin").exists():
        subprocess.run(
            [str(SOLCJS), "--bin", "--abi", "--optimize", "-o", str(out), f"{name}.sol"],
            cwd=CONTRACTS,
            check=True,
            capture_output=True,
        )
    return json.loads(Path(f"{stem}.abi").read_text()), "0x" + Path(f"{stem}.bin").read_text().strip()


class LocalChain:
    """An anvil process of the test's own (a fresh chain: block 0, funded development accounts)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(ANVIL), "--host", "127.0.0.1", "--port", str(self.port), "--silent"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=server_env(),
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                requests.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.w3 = Web3(HTTPProvider(self.url))
        self.accounts = self.w3.eth.accounts

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)

    def rpc(self, method: str, params: list[Any]) -> Any:
        return self.w3.provider.make_request(method, params)["result"]  # type: ignore[arg-type]

    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", [hex(blocks)])

    def automine(self, on: bool) -> None:
        self.rpc("evm_setAutomine", [on])

    def send(self, sender: str, to: str, wei: int) -> str:
        return self.w3.eth.send_transaction({"from": sender, "to": to, "value": wei}).to_0x_hex()

    def signed(self, key_index: int, to: str, wei: int, *, nonce: int | None = None, gas_price: int = 2 * 10**9):
        """A transfer signed with a development key, not yet sent: (hash, raw bytes)."""
        account = Account.from_key(DEV_KEYS[key_index])
        tx = {
            "to": to,
            "value": wei,
            "gas": 21_000,
            "gasPrice": gas_price,
            "nonce": self.w3.eth.get_transaction_count(account.address) if nonce is None else nonce,
            "chainId": int(CHAIN_ID),
        }
        raw = Account.sign_transaction(tx, account.key)
        return raw.hash.to_0x_hex(), raw.raw_transaction

    def send_raw(self, raw: bytes) -> str:
        return self.w3.eth.send_raw_transaction(raw).to_0x_hex()

    def deploy_token(self, owner: str, supply: int):
        abi, bytecode = compiled("Token")
        contract = self.w3.eth.contract(abi=abi, bytecode=bytecode)
        receipt = self.w3.eth.wait_for_transaction_receipt(contract.constructor(supply).transact({"from": owner}))
        return self.w3.eth.contract(address=receipt["contractAddress"], abi=abi)

    def token_transfer(self, token, sender: str, to: str, amount: int) -> str:
        """A token transfer; one the sender cannot afford reverts (gas given, so nothing estimates it first)."""
        return token.functions.transfer(to, amount).transact({"from": sender, "gas": 100_000}).to_0x_hex()
