"""``python -m reasonmed.sim``: the simulation server, without loading the rest of the CLI."""

from reasonmed.sim.cli import run

run()
