"""A real local EVM chain for the on-chain verification tests: anvil (installed by bin/services from
bin/localchain) on a free port, driven over plain JSON-RPC (anvil signs for its funded development
accounts), and the test ERC-20 token of tests/contracts compiled by solc-js (once per source, kept
under .data/contracts). No web3.py here: importing it raises the recursion limit of the whole test
process (its py_ecc does), which the web's JSON depth tests must not run under."""

from __future__ import annotations

import hashlib
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import requests
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from tests.processes import ROOT, free_port, server_env

LOCALCHAIN = ROOT / "bin" / "localchain" / "node_modules"
ANVIL = LOCALCHAIN / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
SOLCJS = LOCALCHAIN / ".bin" / "solcjs"
CONTRACTS = ROOT / "tests" / "contracts"
CHAIN_ID = "31337"


def compiled(name: str) -> str:
    """The deployment bytecode of tests/contracts/<name>.sol, as 0x hex."""
    source = (CONTRACTS / f"{name}.sol").read_bytes()
    out = ROOT / ".data" / "contracts" / hashlib.sha256(source).hexdigest()[:16]
    binary = out / f"{name}_sol_{name}.bin"
    if not binary.exists():
        subprocess.run(
            [str(SOLCJS), "--bin", "--optimize", "-o", str(out), f"{name}.sol"],
            cwd=CONTRACTS,
            check=True,
            capture_output=True,
        )
    return "0x" + binary.read_text().strip()


def quantities(tx: dict[str, Any]) -> dict[str, Any]:
    """A transaction's numbers as JSON-RPC quantities (0x hex)."""
    return {key: hex(value) if isinstance(value, int) else value for key, value in tx.items()}


def call_data(signature: str, types: list[str], values: list[Any]) -> str:
    return "0x" + (keccak(text=signature)[:4] + encode(types, values)).hex()


@dataclass(frozen=True)
class Token:
    address: str


class ChainClient:
    """JSON-RPC to a development chain whose accounts the node signs for (anvil)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.accounts: list[str] = self.rpc("eth_accounts", [])
        self.automining = True

    def rpc(self, method: str, params: list[Any]) -> Any:
        answer = self.session.post(
            self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, timeout=30
        ).json()
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", [hex(blocks)])

    def automine(self, on: bool) -> None:
        self.rpc("evm_setAutomine", [on])
        self.automining = on

    def receipt(self, tx_hash: str, seconds: float = 10) -> dict[str, Any]:
        """The transaction's receipt, waiting for the block that holds it (anvil mines just after answering)."""
        deadline = time.monotonic() + seconds
        while (found := self.rpc("eth_getTransactionReceipt", [tx_hash])) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{tx_hash} was not mined")
            time.sleep(0.01)
        return found

    def block(self, number: int | str) -> dict[str, Any]:
        return self.rpc("eth_getBlockByNumber", [hex(number) if isinstance(number, int) else number, False])

    def transact(self, tx: dict[str, Any]) -> str:
        """Sends the transaction; with automine on, returns once it is mined."""
        tx_hash = self.rpc("eth_sendTransaction", [quantities(tx)])
        if self.automining:
            self.receipt(tx_hash)
        return tx_hash

    def send(self, sender: str, to: str, wei: int) -> str:
        return self.transact({"from": sender, "to": to, "value": wei})

    def signed(self, sender_index: int, to: str, wei: int, *, nonce: int | None = None, gas_price: int = 2 * 10**9):
        """A transfer signed by the node for a development account, not yet sent: (hash, raw 0x hex)."""
        sender = self.accounts[sender_index]
        if nonce is None:
            nonce = int(self.rpc("eth_getTransactionCount", [sender, "pending"]), 16)
        tx = {"from": sender, "to": to, "value": wei, "gas": 21_000, "gasPrice": gas_price, "nonce": nonce}
        raw = self.rpc("eth_signTransaction", [quantities(tx)])
        return "0x" + keccak(hexstr=raw).hex(), raw

    def send_raw(self, raw: str) -> str:
        tx_hash = self.rpc("eth_sendRawTransaction", [raw])
        if self.automining:
            self.receipt(tx_hash)
        return tx_hash

    def deploy_token(self, owner: str, supply: int) -> Token:
        tx_hash = self.transact({"from": owner, "data": compiled("Token") + encode(["uint256"], [supply]).hex()})
        return Token(self.receipt(tx_hash)["contractAddress"])

    def token_transfer(self, token: Token, sender: str, to: str, amount: int) -> str:
        """A token transfer; one the sender cannot afford reverts (gas given, so nothing estimates it first)."""
        data = call_data("transfer(address,uint256)", ["address", "uint256"], [to, amount])
        return self.transact({"from": sender, "to": token.address, "data": data, "gas": 100_000})


class LocalChain(ChainClient):
    """An anvil process of the test's own (a fresh chain: block 0, funded development accounts)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [str(ANVIL), "--host", "127.0.0.1", "--port", str(self.port), "--silent"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=server_env(),
        )
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        super().__init__(url)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
