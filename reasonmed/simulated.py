"""Simulated work never passes for real: it is marked by its model names.

The project's simulator serves only models named ``sim/...`` (it refuses any other name), and a pipeline
file may not mix such names with real ones, so every row the simulator produced carries a ``sim/`` model
and can be told apart in SQL. What follows from that mark:
- ``reasonmed run`` on the simulator uses its own database unless told otherwise;
- a run with real models does not count questions finished only by simulated models as done: it redoes
  them, and their simulated accepted paths are dropped with a reason;
- ``reasonmed export`` leaves simulated rows out unless ``--allow-simulated`` (then the card and the
  manifest say ``simulated: true``).
"""

from __future__ import annotations

SIM_MODEL_PREFIX = "sim/"
SIM_MODEL_LIKE = SIM_MODEL_PREFIX + "%"  # the same rule in SQL (LIKE pattern)
SIM_DATABASE_URL = "sqlite:///reasonmed-sim.db"  # the simulator's own database on the embedded default
SUPERSEDED_REASON = "superseded: simulated work, redone with real models in run {run_id}"


def is_simulated_model(model: str) -> bool:
    return model.startswith(SIM_MODEL_PREFIX)
