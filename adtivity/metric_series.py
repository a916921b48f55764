"""`Series`: the children of a labelled Prometheus metric kept by their label values, for hot paths
(every process that counts per request or per batch)."""

from __future__ import annotations


class Series(dict):
    """The children of a labelled metric, kept by their label values: `labels()` maps its arguments
    on every call, a dict look-up does not. The label values must be few (route templates, formats)."""

    def __init__(self, metric) -> None:
        super().__init__()
        self.metric = metric

    def __missing__(self, values: tuple):
        child = self[values] = self.metric.labels(*values)
        return child
