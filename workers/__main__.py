"""The Procfile's worker: `python -m workers [dramatiq options]` is Dramatiq's own command line with
`workers.main:set_up` as its broker, so each worker process it forks sets itself up explicitly. The
lines its main process writes (booting, signals, a worker process that died) are in the format of
every other log line: Dramatiq's logging set-up leaves an already configured root logger alone."""

import sys

from dramatiq.cli import main, make_argument_parser

from adtivity.logs import configure_logging
from adtivity.settings import Settings

if __name__ == "__main__":
    configure_logging(Settings.from_env(), process="worker")
    sys.exit(main(make_argument_parser().parse_args(["workers.main:set_up", *sys.argv[1:]])))
