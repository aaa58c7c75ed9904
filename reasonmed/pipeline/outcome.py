"""What a build run did and what it left, said the same way by the CLI, the flow and its artifacts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from reasonmed.db.claims_repo import Holder

# done: every claimable question was processed; incomplete: some failed or were set aside;
# degraded: processed, but one role's output was mostly unusable (the model or prompt needs attention);
# interrupted: a signal or a cancellation stopped it; endpoint_down: a circuit breaker opened.
RunStatus = Literal["done", "incomplete", "degraded", "interrupted", "endpoint_down"]
ALARM_MIN_OUTPUTS = 10  # fewer outputs than this say too little about a role's health


@dataclass(frozen=True, slots=True)
class HeldClaim:
    worker: str
    questions: int
    lease_ends: str  # ISO time, UTC

    @classmethod
    def of(cls, holder: Holder) -> HeldClaim:
        return cls(holder.worker, holder.questions, _iso(holder.lease_ends))


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class BuildOutcome:
    run_id: int
    status: RunStatus
    done: int  # questions finished (accepted or rejected) by this run
    accepted: int
    rejected: int
    set_aside: int  # set aside by this run: skipped until `reasonmed retry`
    failed: int  # failed in this run, to be tried again by a later run
    pending: int  # training questions still to do (not finished, not set aside), after this run
    held: list[HeldClaim] = field(default_factory=list)  # claims of other live workers
    stop_reason: str | None = None
    token_budget_reached: bool = False
    set_aside_total: int = 0  # set aside in the database, by this run or earlier ones
    unusable: dict[str, list[int]] = field(default_factory=dict)  # role -> [outputs, unusable] this run
    alarms: list[str] = field(default_factory=list)  # roles whose output was mostly unusable
    waiting: int = 0  # questions left waiting on batch results (endpoints with mode batch)
    open_batches: int = 0  # batches submitted and not yet collected, by this run or earlier ones

    @property
    def ok(self) -> bool:
        return self.status == "done"

    @property
    def exit_code(self) -> int:
        """0 done; 1 questions failed or set aside; 3 an endpoint went down; 5 degraded output; 130 interrupted."""
        return {"done": 0, "incomplete": 1, "endpoint_down": 3, "degraded": 5, "interrupted": 130}[
            self.status
        ]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BuildOutcome:
        """Back from ``as_dict`` (a flow result crosses Prefect as plain data)."""
        return cls(**{**raw, "held": [HeldClaim(**h) for h in raw.get("held", [])]})

    def lines(self) -> list[str]:
        """The run's account, one fact a line; the last line is the verdict."""
        out = [
            f"run {self.run_id}: {self.done} question(s) done ({self.accepted} accepted, {self.rejected} rejected), "
            f"{self.set_aside} set aside, {self.failed} failed (retried by the next run), {self.pending} still pending",
        ]
        for h in self.held:
            out.append(
                f"held by another worker: {h.questions} question(s) by {h.worker} until {h.lease_ends}"
            )
        if self.set_aside:
            out.append(
                "set-aside questions and their reasons: `reasonmed audit --view audit_set_aside`; "
                "put them back with `reasonmed retry --all-failed`"
            )
        for role, (outputs, bad) in self.unusable.items():
            if outputs:
                out.append(
                    f"{role} output unusable after every re-ask: {bad} of {outputs} ({bad / outputs:.0%})"
                )
        if self.waiting or self.open_batches:
            out.append(
                f"{self.waiting} question(s) wait on {self.open_batches} open batch(es): the next run collects "
                "what is back (`reasonmed audit --view audit_batches`); `--batch-wait SECONDS` waits in the run"
            )
        if self.token_budget_reached:
            out.append("the token budget was reached: no further questions were claimed")
        out.append(self.verdict())
        return out

    def verdict(self) -> str:
        if self.status == "interrupted":
            return f"INTERRUPTED: {self.stop_reason}; claims released, a rerun resumes where this one stopped"
        if self.status == "endpoint_down":
            return f"STOPPED: {self.stop_reason}; claims released, rerun once the endpoint is back"
        if self.status == "incomplete":
            return (
                f"INCOMPLETE: {self.set_aside} question(s) set aside and {self.failed} failed in this run "
                f"({self.pending} still pending)"
            )
        if self.status == "degraded":
            return (
                f"DEGRADED: {', '.join(self.alarms)} output mostly unusable this run; check that model and its "
                "prompt (`reasonmed audit`) before trusting these results"
            )
        aside = f" ({self.set_aside_total} set aside: `reasonmed retry`)" if self.set_aside_total else ""
        if self.pending == 0 and not self.held:
            if self.done == 0:
                return f"nothing left to do: every training question in the database is finished or set aside{aside}"
            return f"done: every training question in the database is finished or set aside{aside}"
        held = f", {sum(h.questions for h in self.held)} held by other workers" if self.held else ""
        return f"done: {self.done} question(s) processed; {self.pending} still pending for a later run{held}{aside}"


def alarms_of(unusable: dict[str, list[int]], rate: float) -> list[str]:
    """Roles whose unusable share reached ``rate`` over enough outputs to mean something."""
    return [role for role, (n, bad) in unusable.items() if n >= ALARM_MIN_OUTPUTS and bad / n >= rate]
