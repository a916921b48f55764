"""The worker process: Dramatiq actors for every piece of background work. Importing a module here
declares nothing and connects nothing; `python -m workers` (workers/__main__.py) starts Dramatiq, whose
worker processes set themselves up through workers/main.py."""
