"""The operator CLI: `python -m adtivity <command>`. Run with --help for the commands."""

from adtivity.cli import main

raise SystemExit(main())
