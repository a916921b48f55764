"""Entry point of the scheduler process."""

from scheduler.main import main

raise SystemExit(main())
