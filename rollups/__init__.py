"""Rollups, the domain: recomputing a company's hourly and daily rows and sketches from ClickHouse
(compute.py). Used by the worker, the privacy requests and the operator CLI."""
