"""Batched JSON-RPC to one chain's endpoints (web3.py's HTTP provider): many calls in one round trip,
each answered or failed on its own; an endpoint that fails as a whole hands the batch to the next.
Counts every call it makes (the verifier's cost is measured in calls per transaction)."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from web3 import HTTPProvider

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
        self.providers = [
            HTTPProvider(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None)
            for url in endpoints
        ]
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
        for index, provider in enumerate(self.providers):
            try:
                responses = provider.make_batch_request(calls)  # type: ignore[arg-type]
            except Exception as error:  # noqa: BLE001  # any transport failure: try the next endpoint
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
            if not isinstance(responses, list) or len(responses) != len(calls):
                CHAIN_RPC_FAILURES.labels(self.chain_id).inc()
                log_event(log, "chain endpoint refused the batch", level=logging.WARNING, chain=self.chain_id)
                continue
            return [
                CallFailed(str(response["error"].get("message", "")))
                if response.get("error")
                else response.get("result")
                for response in responses
            ]
        raise ChainUnavailable(f"no endpoint of chain {self.chain_id} answered")
