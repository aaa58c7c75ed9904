"""``reasonmed sim-server``: the simulation server (the command itself lives in ``reasonmed.sim.cli``)."""

from __future__ import annotations

from reasonmed.cli.app import OPERATE, app
from reasonmed.sim.cli import HELP, sim_server

app.command("sim-server", help=HELP, rich_help_panel=OPERATE)(sim_server)
