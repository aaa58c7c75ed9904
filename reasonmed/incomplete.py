"""The one meaning of "incomplete": some of a unit's work failed after every retry.

What succeeded is stored, and running again does only the rest (a question's stage, a benchmark's
evaluation, a variant's scoring). Each place raises its own subclass, which says which unit it was
and how it is retried.
"""

from __future__ import annotations


class Incomplete(RuntimeError):
    """Work left undone after every retry; the rest is stored, and a rerun does only what is missing."""
