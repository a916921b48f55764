"""The chain's JSON-RPC answers as plain values: receipts, blocks, ERC-20 Transfer logs and token
metadata, decoded with eth-abi and eth-utils."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils.conversions import to_int
from eth_utils.crypto import keccak

TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
DECIMALS_CALL = "0x" + keccak(text="decimals()")[:4].hex()
SYMBOL_CALL = "0x" + keccak(text="symbol()")[:4].hex()
NATIVE_DECIMALS = 18  # wei in a coin: 10^18


def quantity(value: str | None) -> int | None:
    """A JSON-RPC quantity ("0x1a") as an int."""
    return None if value is None else to_int(hexstr=value)


@dataclass(frozen=True)
class Header:
    number: int
    hash: str
    timestamp: int


def header(block: dict[str, Any]) -> Header:
    return Header(to_int(hexstr=block["number"]), block["hash"].lower(), to_int(hexstr=block["timestamp"]))


@dataclass(frozen=True)
class Transfer:
    token: str
    sender: str
    recipient: str
    amount: int  # in the token's smallest unit


@dataclass(frozen=True)
class Receipt:
    block_number: int
    block_hash: str
    succeeded: bool
    sender: str
    recipient: str
    gas_used: int
    transfers: tuple[Transfer, ...]


def receipt(answer: dict[str, Any]) -> Receipt:
    return Receipt(
        block_number=to_int(hexstr=answer["blockNumber"]),
        block_hash=answer["blockHash"].lower(),
        succeeded=to_int(hexstr=answer.get("status") or "0x1") == 1,
        sender=(answer.get("from") or "").lower(),
        recipient=(answer.get("to") or answer.get("contractAddress") or "").lower(),
        gas_used=to_int(hexstr=answer.get("gasUsed") or "0x0"),
        transfers=tuple(transfer for log in answer.get("logs") or () if (transfer := erc20_transfer(log))),
    )


def erc20_transfer(log: dict[str, Any]) -> Transfer | None:
    """An ERC-20 Transfer(address indexed, address indexed, uint256) log, else None (ERC-721's Transfer
    has the token id as a third topic, and no data)."""
    topics = [topic.lower() for topic in log.get("topics") or ()]
    if len(topics) != 3 or topics[0] != TRANSFER_TOPIC:
        return None
    try:
        sender, recipient = (abi_decode(["address"], bytes.fromhex(topic[2:]))[0] for topic in topics[1:])
        (amount,) = abi_decode(["uint256"], bytes.fromhex(log.get("data", "0x")[2:]))
    except (DecodingError, ValueError):
        return None
    return Transfer(log["address"].lower(), sender.lower(), recipient.lower(), amount)


@dataclass(frozen=True)
class BlockTransaction:
    sender: str
    recipient: str
    value: int
    nonce: int


def block_transactions(block: dict[str, Any]) -> dict[str, BlockTransaction]:
    """A block fetched with its transactions: hash -> what the chain recorded of each."""
    return {
        tx["hash"].lower(): BlockTransaction(
            sender=tx["from"].lower(),
            recipient=(tx.get("to") or "").lower(),
            value=to_int(hexstr=tx["value"]),
            nonce=to_int(hexstr=tx["nonce"]),
        )
        for tx in block.get("transactions") or ()
        if isinstance(tx, dict)
    }


def token_decimals(answer: Any) -> int:
    """decimals() of an ERC-20 token; 0 when the token does not answer it."""
    try:
        return int(abi_decode(["uint8"], bytes.fromhex(answer[2:]))[0]) if isinstance(answer, str) else 0
    except (DecodingError, ValueError):
        return 0


def token_symbol(answer: Any) -> str:
    """symbol() of an ERC-20 token (a string, or a bytes32 in older tokens); "" when it does not answer."""
    if not isinstance(answer, str) or len(answer) < 66:
        return ""
    raw = bytes.fromhex(answer[2:])
    try:
        return str(abi_decode(["string"], raw)[0])[:32]
    except (DecodingError, ValueError, UnicodeDecodeError):
        return raw[:32].rstrip(b"\0").decode("utf-8", "replace")


def decimal_or_none(text: str) -> Decimal | None:
    try:
        return Decimal(text)
    except ArithmeticError:
        return None


def whole_units(amount: int, decimals: int) -> Decimal:
    """An amount in a coin's or token's smallest unit, in whole units."""
    return Decimal(amount) / Decimal(10) ** decimals


def reported_value_agrees(reported: str, amount: int, decimals: int) -> bool:
    """The client's value is the chain's `amount`, given in the smallest unit or in whole units."""
    value = decimal_or_none(reported)
    return value is not None and (value == amount or value == whole_units(amount, decimals))
