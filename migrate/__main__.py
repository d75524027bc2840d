"""Run the poolmigrate command line as `python -m migrate`."""

from migrate.cli import app

app(prog_name="poolmigrate")
