"""The report's charts as PNG bytes.

Figures are built with ``matplotlib.figure.Figure`` on the Agg canvas, never pyplot: no GUI backend,
no global state, safe in worker threads and on headless servers.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reasonmed.extras import require
from reasonmed.report.data import ReportData

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TIER_ORDER = ("easy", "medium", "difficult", "-")


def _figure(figsize: tuple[float, float]) -> Figure:
    """A new figure; matplotlib comes with the [report] extra, loaded only when a chart is drawn."""
    figure: Figure = require("matplotlib.figure", "report").Figure(figsize=figsize)
    return figure


def _png(fig: Figure) -> bytes:
    require("matplotlib.backends.backend_agg", "report").FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def _empty(ax: Any, message: str = "no data yet") -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def tier_distribution(data: ReportData) -> bytes:
    fig = _figure((6, 3.5))
    ax = fig.add_subplot()
    rows = sorted(data.tiers, key=lambda r: TIER_ORDER.index(r["tier"]) if r["tier"] in TIER_ORDER else 99)
    if not rows:
        _empty(ax)
    else:
        labels = [r["tier"] for r in rows]
        bottom = [0] * len(rows)
        for status, color in (("accepted", "#2a9d8f"), ("resolved", "#e9c46a"), ("rejected", "#e76f51")):
            values = [int(r[status] or 0) for r in rows]
            ax.bar(labels, values, bottom=bottom, label=status, color=color)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set_ylabel("questions")
        ax.legend(frameon=False)
    ax.set_title("Questions per difficulty tier")
    return _png(fig)


def verifier_accuracy(data: ReportData) -> bytes:
    fig = _figure((7, 3.8))
    ax = fig.add_subplot()
    if not data.accuracy:
        _empty(ax)
    else:
        models = sorted({r["model"] for r in data.accuracy})
        temps = sorted({r["temperature"] for r in data.accuracy})
        width = 0.8 / max(1, len(temps))
        for j, t in enumerate(temps):
            acc = {r["model"]: r["accuracy"] for r in data.accuracy if r["temperature"] == t}
            xs = [i + j * width for i in range(len(models))]
            ax.bar(xs, [acc.get(m, 0.0) or 0.0 for m in models], width=width, label=f"T={t:g}")
        ax.set_xticks([i + width * (len(temps) - 1) / 2 for i in range(len(models))])
        # Whole names: the organisation part tells sim/... apart from a real model of the same name.
        ax.set_xticklabels([m.replace("/", "/\n", 1) for m in models], rotation=15, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("judged correct")
        ax.legend(frameon=False, ncols=max(1, len(temps)))
    ax.set_title("Verifier accuracy per generator model and temperature")
    return _png(fig)


def path_lengths(data: ReportData) -> bytes:
    fig = _figure((6, 3.5))
    ax = fig.add_subplot()
    all_words = [w for _, _, w in data.word_counts]
    kept = [w for _, k, w in data.word_counts if k]
    if not all_words:
        _empty(ax)
    else:
        bins = 30
        ax.hist(all_words, bins=bins, alpha=0.6, label=f"all paths ({len(all_words)})", color="#8d99ae")
        ax.hist(kept, bins=bins, alpha=0.8, label=f"kept ({len(kept)})", color="#2a9d8f")
        ax.set_xlabel("words per reasoning path")
        ax.set_ylabel("paths")
        ax.legend(frameon=False)
    ax.set_title("Reasoning path length")
    return _png(fig)


def rejections(data: ReportData) -> bytes:
    fig = _figure((7, 4.5))
    top, bottom = fig.subplots(2, 1)
    for ax, key, title in (
        (top, "questions", "Rejected questions by reason"),
        (bottom, "paths", "Paths not kept, by why"),
    ):
        rows = data.rejected_questions.get(key) or []
        if not rows:
            _empty(ax, "none")
        else:
            labels = [(str(r["reason"])[:60] + ("…" if len(str(r["reason"])) > 60 else "")) for r in rows][
                :10
            ]
            ax.barh(labels[::-1], [r["n"] for r in rows][:10][::-1], color="#e76f51")
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _png(fig)


def tokens_per_stage(data: ReportData) -> bytes:
    fig = _figure((6, 3.5))
    ax = fig.add_subplot()
    if not data.tokens:
        _empty(ax)
    else:
        stages = [r["stage"] for r in data.tokens]
        prompt = [int(r["prompt_tokens"] or 0) for r in data.tokens]
        completion = [int(r["completion_tokens"] or 0) for r in data.tokens]
        ax.bar(stages, prompt, label="prompt", color="#457b9d")
        ax.bar(stages, completion, bottom=prompt, label="completion", color="#f4a261")
        ax.set_ylabel("tokens")
        ax.tick_params(axis="x", rotation=15)
        ax.legend(frameon=False)
    ax.set_title("Tokens per stage")
    return _png(fig)


FIGURES: dict[str, tuple[str, Callable[[ReportData], bytes]]] = {
    "tier_distribution": ("Tier distribution", tier_distribution),
    "verifier_accuracy": ("Verifier accuracy per generator model and temperature", verifier_accuracy),
    "path_lengths": ("Path-length histogram (words)", path_lengths),
    "rejections": ("Rejections by reason", rejections),
    "tokens_per_stage": ("Tokens per stage", tokens_per_stage),
}


def render_all(data: ReportData) -> dict[str, bytes]:
    return {name: render(data) for name, (_, render) in FIGURES.items()}
