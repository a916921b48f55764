"""The Procfile's worker: `python -m adtivity.dramatiq_main workers ...` is Dramatiq's own command
line, with the lines its main process writes (booting, signals, a worker process that died) in the
format of every other log line. Dramatiq's logging set-up leaves an already configured root logger
alone, so configuring ours first is enough; the worker processes it forks inherit it until
workers/ configures theirs. It lives outside workers/ because importing that package binds the
broker and declares the actors, which only the worker processes should do."""
import sys

from dramatiq.cli import main

from adtivity.logs import configure_logging
from adtivity.settings import Settings

if __name__ == "__main__":
    configure_logging(Settings.from_env(), process="worker")
    sys.exit(main())
