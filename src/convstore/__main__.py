"""``python -m convstore`` runs the command-line interface."""

from convstore.cli import app

app(prog_name="convstore")
