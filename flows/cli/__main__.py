"""``python -m flows.cli`` is the ``zoo`` command."""

from flows.cli import app

app()
