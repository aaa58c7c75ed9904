"""The pipeline's names, one per concept: a role (who acts), the build stage it acts in (the verb a task and
an error row carry), the name of its prompt, and the origin of the paths it writes; and the statuses a
question ends a run with.

A role is a noun (``refiner``); its prompt is the verb (``refine``), which is also how its requests and stale
work are named; it runs inside a stage (``resolve``); a path it writes has an origin (``refined``). Every
tuple of these names elsewhere is derived from here, so a new role is added once.
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """The four stages a question goes through in a build, in order (one Prefect task each)."""

    GENERATE = "generate"
    VERIFY = "verify"
    RESOLVE = "resolve"
    SUMMARIZE = "summarize"


class Origin(StrEnum):
    """Where a path comes from: generated, or rewritten by the refiner or the regenerator."""

    GENERATED = "generated"
    REFINED = "refined"
    REGENERATED = "regenerated"


class Role(StrEnum):
    """Who acts on a question, with the prompt it uses, the stage it acts in and the paths it writes."""

    GENERATOR = "generator"
    VERIFIER = "verifier"
    RANKER = "ranker"
    REFINER = "refiner"
    REGENERATOR = "regenerator"
    SUMMARIZER = "summarizer"

    @property
    def prompt(self) -> str:
        """The name of its prompt template, and of its requests and stale work (a verb)."""
        return _PROMPT[self]

    @property
    def stage(self) -> Stage:
        return _STAGE[self]

    @property
    def origin(self) -> Origin | None:
        """The origin of the paths it writes; None for a judge."""
        return _ORIGIN.get(self)

    @property
    def writes(self) -> Origin:
        """The origin of the paths it writes; a judge writes none (ValueError)."""
        origin = _ORIGIN.get(self)
        if origin is None:
            raise ValueError(f"the {self} writes no paths")
        return origin

    @property
    def judges(self) -> bool:
        """Reads paths and writes a judgment of them (verdict, score, summary) rather than paths."""
        return self.origin is None and self is not Role.GENERATOR


_PROMPT = {
    Role.GENERATOR: "generate",
    Role.VERIFIER: "verify",
    Role.RANKER: "rank",
    Role.REFINER: "refine",
    Role.REGENERATOR: "regenerate",
    Role.SUMMARIZER: "summarize",
}
_STAGE = {
    Role.GENERATOR: Stage.GENERATE,
    Role.VERIFIER: Stage.VERIFY,
    Role.RANKER: Stage.RESOLVE,
    Role.REFINER: Stage.RESOLVE,
    Role.REGENERATOR: Stage.RESOLVE,
    Role.SUMMARIZER: Stage.SUMMARIZE,
}
_ORIGIN = {
    Role.GENERATOR: Origin.GENERATED,
    Role.REFINER: Origin.REFINED,
    Role.REGENERATOR: Origin.REGENERATED,
}

# The roles whose stored work a change of model or prompt makes stale (every one but the generator: a new
# generator adds paths, it does not void the old ones), by their prompt names.
RECHECKED_PROMPTS: tuple[str, ...] = tuple(r.prompt for r in Role if r is not Role.GENERATOR)
# The evaluation's own prompts, beside the pipeline's.
EVALUATION_PROMPTS: tuple[str, ...] = ("evaluate", "judge")


class QuestionStatus(StrEnum):
    """How a question left a run: finished (accepted, rejected), or not (why)."""

    RESOLVED = "resolved"  # accepted paths chosen, their summaries still to write
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    FAILED = "failed"  # a later run tries again
    SET_ASIDE = "set_aside"  # failed for good or too often: skipped until `reasonmed retry`
    WAITING = "waiting"  # its requests are in a batch not back yet
    ENDPOINT_DOWN = "endpoint_down"  # the endpoint's outage, not the question's: it stays pending

    @property
    def finished(self) -> bool:
        return self in (QuestionStatus.ACCEPTED, QuestionStatus.REJECTED)
