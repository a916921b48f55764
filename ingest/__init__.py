"""SDK ingest, the domain: wire formats (wire.py, formats.py), enrichment as named steps (enrich.py),
the accept path every sender goes through (accept.py: the web's ingest endpoints and the CLI's import),
and the one Redis call that makes events durable (write.py, script.py). It raises domain errors and
knows nothing of HTTP."""
