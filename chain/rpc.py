"""Batched JSON-RPC to one chain's endpoints: many calls in one HTTP round trip (a JSON array of
requests, answered in any order and matched by id), each answered or failed on its own; an endpoint
that fails as a whole hands the batch to the next. Counts every call it makes (the verifier's cost is
measured in calls per transaction). Plain `requests`: web3.py's provider would do the same, but
importing web3 raises Python's recursion limit to 100,000 for the whole process (its py_ecc does)."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

import requests

from adtivity.logs import log_event
from adtivity.metrics import CHAIN_RPC_CALLS, CHAIN_RPC_FAILURES

log = logging.getLogger(__name__)


class ChainUnavailable(Exception):
    """No endpoint of the chain answered the batch."""


@dataclass(frozen=True)
class CallFailed:
    """The chain answered this one call with an error."""

    message: str


class ChainRpc:
    def __init__(self, chain_id: str, endpoints: tuple[str, ...], *, timeout: float, batch_size: int) -> None:
        if not endpoints:
            raise ValueError(f"chain {chain_id} has no JSON-RPC endpoint")
        self.chain_id = chain_id
        self.batch_size = batch_size
        self.endpoints = endpoints
        self.timeout = timeout
        self.session = requests.Session()
        self.calls: Counter[str] = Counter()  # method -> calls made by this client

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """The result of each call, in order (a CallFailed where the chain answered with an error), in
        requests of at most `batch_size` calls. Raises ChainUnavailable when no endpoint answers."""
        results: list[Any] = []
        for start in range(0, len(calls), self.batch_size):
            results.extend(self._request(calls[start : start + self.batch_size]))
        return results

    def _request(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        for method, _params in calls:
            self.calls[method] += 1
            CHAIN_RPC_CALLS.labels(self.chain_id, method).inc()
        body: list[Any] = [
            {"jsonrpc": "2.0", "id": i, "method": method, "params": params} for i, (method, params) in enumerate(calls)
        ]
        for index, url in enumerate(self.endpoints):
            try:
                answer = self.session.post(url, json=body, timeout=self.timeout)
                answer.raise_for_status()
                responses = answer.json()
            except (requests.RequestException, ValueError) as error:  # down, refused, or not JSON: the next
                CHAIN_RPC_FAILURES.labels(self.chain_id).inc()
                log_event(
                    log,
                    "chain endpoint failed",
                    level=logging.WARNING,
                    chain=self.chain_id,
                    endpoint=index,
                    error=type(error).__name__,
                )
                continue
            by_id = {
                response.get("id"): response
                for response in (responses if isinstance(responses, list) else ())
                if isinstance(response, dict)
            }
            if set(by_id) != set(range(len(calls))):  # an error for the whole batch, or answers missing
                CHAIN_RPC_FAILURES.labels(self.chain_id).inc()
                log_event(log, "chain endpoint refused the batch", level=logging.WARNING, chain=self.chain_id)
                continue
            return [
                CallFailed(str(response["error"].get("message", "")))
                if isinstance(response.get("error"), dict)
                else response.get("result")
                for response in (by_id[i] for i in range(len(calls)))
            ]
        raise ChainUnavailable(f"no endpoint of chain {self.chain_id} answered")
