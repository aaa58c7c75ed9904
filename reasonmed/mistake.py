"""A mistake the user can fix, said in one line: what the CLI prints and the Python API raises.

Raised by the jobs below the CLI (``reasonmed/jobs``) as much as by the commands; ``reasonmed.cli.errors``
turns it, with the other common mistakes, into one line and an exit code.
"""

from __future__ import annotations

MISTAKE_EXIT = 2  # the command did not start: nothing was changed


class Mistake(Exception):
    """Something the user can fix; the message is the whole story, phrased as what to do."""

    def __init__(self, message: str, exit_code: int = MISTAKE_EXIT) -> None:
        super().__init__(message)
        self.exit_code = exit_code
