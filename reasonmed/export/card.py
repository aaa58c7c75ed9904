"""The dataset cards (``README.md`` with YAML front matter) the Hugging Face Hub and ``datasets`` read.

Each dataset folder has its own card, and the version folder is one Hub-style repository whose root card
declares the three datasets as configs (``load_dataset(path, "CoTMed")``). On the Hub every version is a
folder of one repository, and the repository's root card (``hub_repo_card``) is the latest version's root
card with its configs pointing into that folder. Every card states what made
the rows: the models and prompt sha256s per role, the prompt profile, the config hashes of the runs, the
paper, the source datasets' licences, the intended use and a medical-use disclaimer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

PAPER_CITATION = """@misc{sun2025reasonmed,
  title         = {ReasonMed: A 370K Multi-Agent Generated Dataset for Advancing Medical Reasoning},
  author        = {Sun, Yu and Qian, Xingyu and Xu, Weiwen and Zhang, Hao and Xiao, Chenghao and Li, Long and
                   Rong, Yu and Huang, Wenbing and Bai, Qifeng and Xu, Tingyang},
  year          = {2025},
  eprint        = {2506.09513},
  archivePrefix = {arXiv},
  primaryClass  = {cs.CL}
}"""

# Licences as published by each source's authors; check them before redistributing.
SOURCE_LICENCES: dict[str, tuple[str, str]] = {
    "medqa": ("MedQA (USMLE)", "MIT (github.com/jind11/MedQA)"),
    "medmcqa": ("MedMCQA", "MIT (github.com/medmcqa/medmcqa)"),
    "pubmedqa": ("PubMedQA (PQA-L)", "MIT (github.com/pubmedqa/pubmedqa)"),
    "mmlu": ("MMLU medical subsets", "MIT (github.com/hendrycks/test)"),
}
CUSTOM_LICENCE = (
    "your own files (source `custom`)",
    "as their owners licensed them: not known to the exporter",
)

# The Hub reads `license: other` with a name and a link to the terms; the terms are the file written beside
# every card (``render_license``): the sources' licences and the generating models' terms, none of which is
# one SPDX licence.
LICENSE_FILE = "LICENSE.md"
LICENSE_FRONT = {"license": "other", "license_name": "reasonmed-export", "license_link": LICENSE_FILE}
ROLE_NAMES = {
    "generator": "generation (chain of thought)",
    "refiner": "error refiner",
    "regenerator": "difficult tier",
    "verifier": "verifier (kept paths' verdicts)",
    "ranker": "quality ranker",
    "summarizer": "summariser",
}
INTENDED_USE = (
    "Supervised fine-tuning and evaluation of language models on medical question answering with explicit "
    "reasoning; research on reasoning-data pipelines. Not for clinical decision making, patient care, or as a "
    "source of medical advice."
)
DISCLAIMER = (
    "**Medical disclaimer.** Every row was written by language models and checked by another language model "
    "against an exam answer key; the reasoning can still contain factual errors, outdated guidance or unsafe "
    "statements. Nothing here is medical advice. Do not use it to diagnose or treat anyone; consult a "
    "qualified clinician."
)

DESCRIPTIONS = {
    "ReasonMed": "the full verified chain of thought, a blank line, then the concise summary (the paper's best set)",
    "CoTMed": "the verified chain of thought only",
    "ResponseMed": "the concise summary only",
}


def size_category(n: int) -> str:
    for limit, label in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
    ):
        if n < limit:
            return label
    return "1M<n<10M"


def data_path(name: str, formats: Sequence[str], *, from_root: bool) -> str:
    """Where ``datasets`` finds one dataset's rows: its Parquet shards when they were written, else its JSON
    Lines file (relative to the version folder, or to the dataset's own folder)."""
    folder = f"{name}/" if from_root else ""
    return f"{folder}data/train-*" if "parquet" in formats else f"{folder}{name}.jsonl"


def render_license(by_source: Mapping[str, int], provenance: Mapping[str, Any] | None) -> str:
    """The terms the cards link to: each exported source's licence and the models whose output the rows are."""
    lines = [
        "# Terms of this export",
        "",
        "The rows combine questions from public datasets with text written by language models. There is no "
        "single licence: each part keeps its own terms.",
        "",
        "## Question sources in this export",
        "",
        "| source | rows | licence |",
        "|---|---|---|",
    ]
    for source, n in sorted(by_source.items()):
        label, licence = SOURCE_LICENCES.get(source, CUSTOM_LICENCE)
        lines.append(f"| {label} | {n} | {licence} |")
    models = sorted({e["model"] for es in (provenance or {}).get("roles", {}).values() for e in es})
    lines += [
        "",
        "## Generated text",
        "",
        "Reasoning paths and summaries were written by the models below; their use is subject to each "
        "model's licence and its provider's terms.",
        "",
        *(f"- {m}" for m in models or ["(not recorded)"]),
        "",
        DISCLAIMER,
        "",
    ]
    return "\n".join(lines)


def provenance_section(provenance: Mapping[str, Any] | None, config_hashes: Sequence[str]) -> str:
    """Markdown: models and prompt shas per role, prompt profile, config hashes, citation, licences, use."""
    lines = ["## How the rows were made", ""]
    if provenance:
        models = {e["model"] for es in provenance.get("roles", {}).values() for e in es}
        if any(m.startswith("sim/") for m in models):
            lines += [
                "**Simulated:** models named `sim/...` are the project's simulator, not real models; "
                "these rows are test data, not a dataset.",
                "",
            ]
        profiles = provenance.get("prompt_profiles") or {}
        shown = (
            ", ".join(f"`{p}` ({n} run{'s' if n != 1 else ''})" for p, n in sorted(profiles.items())) or "-"
        )
        lines += [
            f"Prompt profile: {shown}.",
            "",
            "| role | model | prompt sha256 | variant | rows |",
            "|---|---|---|---|---|",
        ]
        for role in ("generator", "refiner", "regenerator", "verifier", "ranker", "summarizer"):
            for e in provenance.get("roles", {}).get(role, []):
                lines.append(
                    f"| {ROLE_NAMES.get(role, role)} | {e['model']} | `{e['prompt_sha256']}` | "
                    f"{e['prompt_variant']} | {e['rows']} |"
                )
        lines += [
            "",
            "Each prompt's exact text is stored by sha256 in the `prompt_templates` table of the "
            "building database; a re-ask variant is the template with a note appended.",
        ]
    lines += ["", "Config hashes of the runs: " + (", ".join(f"`{h}`" for h in config_hashes) or "-"), ""]
    lines += ["## Sources and licences", "", "| source | licence |", "|---|---|"]
    lines += [f"| {label} | {lic} |" for label, lic in SOURCE_LICENCES.values()]
    lines += [
        "",
        "Only training, development and validation items are used; benchmark test items, and "
        "questions that copy them, are never exported.",
        "",
        "## Intended use",
        "",
        INTENDED_USE,
        "",
        DISCLAIMER,
        "",
        "## Citation",
        "",
        "The method reproduces ReasonMed (Sun et al., 2025):",
        "",
        "```bibtex",
        PAPER_CITATION,
        "```",
        "",
    ]
    return "\n".join(lines)


def render_hub_card(
    *,
    version: int,
    rows: int,
    by_source: dict[str, int],
    layout: str,
    formats: list[str],
    provenance: Mapping[str, Any] | None = None,
    config_hashes: Sequence[str] = (),
) -> str:
    """The version folder's root card: one Hub repository, the three datasets as configs (ReasonMed default)."""
    front = {
        "pretty_name": "ReasonMed pipeline export",
        "language": ["en"],
        **LICENSE_FRONT,
        "task_categories": ["question-answering", "text-generation"],
        "tags": ["medical", "chain-of-thought", "reasonmed", "synthetic"],
        "size_categories": [size_category(rows)],
        "configs": [
            {
                "config_name": name,
                "data_files": [{"split": "train", "path": data_path(name, formats, from_root=True)}],
                **({"default": True} if name == "ReasonMed" else {}),
            }
            for name in DESCRIPTIONS
        ],
    }
    sources = "\n".join(f"| {s} | {n} |" for s, n in sorted(by_source.items())) or "| - | 0 |"
    configs = "\n".join(f"| `{n}` | {d} |" for n, d in DESCRIPTIONS.items())
    body = f"""# ReasonMed pipeline export v{version:04d}

Verified medical chain-of-thought data: each row is one exam question and one accepted reasoning path.
Three datasets hold the same {rows} rows (layout `{layout}`, formats: {", ".join(formats)}) and differ only in
`output`:

| config | `output` |
|---|---|
{configs}

| source | rows |
|---|---|
{sources}

```python
from datasets import load_dataset
ds = load_dataset("path/to/v{version:04d}", "CoTMed", split="train")   # or "ReasonMed" (default), "ResponseMed"
```

{provenance_section(provenance, config_hashes)}"""
    return "---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---\n\n" + body


def render_card(
    name: str,
    *,
    version: int,
    rows: int,
    by_source: dict[str, int],
    layout: str,
    formats: list[str],
    files: list[str],
    simulated_rows: int = 0,
    provenance: Mapping[str, Any] | None = None,
    config_hashes: Sequence[str] = (),
) -> str:
    front: dict[str, Any] = {
        "pretty_name": name,
        "language": ["en"],
        **LICENSE_FRONT,
        "task_categories": ["question-answering", "text-generation"],
        "tags": ["medical", "chain-of-thought", "reasonmed", "synthetic"]
        + (["simulated"] if simulated_rows else []),
        "size_categories": [size_category(rows)],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": "train", "path": data_path(name, formats, from_root=False)}],
            }
        ],
    }
    if simulated_rows:
        front["simulated"] = True
    data_file = f"{name}.jsonl" if "jsonl" in formats else "data"
    sources = "\n".join(f"| {s} | {n} |" for s, n in sorted(by_source.items())) or "| - | 0 |"
    if layout == "chat":
        columns = (
            "- `messages`: system / user / assistant turns (`role`, `content`), loadable as-is by TRL's "
            "`SFTTrainer` and LLaMA-Factory (`formatting: sharegpt` with OpenAI-style tags)"
        )
        loader = (
            "LLaMA-Factory `dataset_info.json` entry:\n\n```json\n"
            f'{{"{name.lower()}": {{"file_name": "{data_file}", "formatting": "sharegpt", '
            '"columns": {"messages": "messages"}, "tags": {"role_tag": "role", "content_tag": "content", '
            '"user_tag": "user", "assistant_tag": "assistant", "system_tag": "system"}}}\n```'
        )
    else:
        columns = (
            "- `instruction`: the question, its context if any, and the options\n"
            "- `input`: empty (as in the public release)\n"
            f"- `output`: {DESCRIPTIONS.get(name, '')}"
        )
        loader = (
            "LLaMA-Factory `dataset_info.json` entry (alpaca format):\n\n```json\n"
            f'{{"{name.lower()}": {{"file_name": "{data_file}", "columns": '
            '{"prompt": "instruction", "query": "input", "response": "output"}}}\n```'
        )
    warning = (
        f"> **SIMULATED: {simulated_rows} of {rows} rows were written by the project's simulator (model names "
        "`sim/...`), not by language models. They test the machinery; they are not medical data and must not "
        "be used to train or evaluate a model.**\n\n"
        if simulated_rows
        else ""
    )
    loading = (
        f'ds = load_dataset("parquet", data_files="{name}/data/train-*.parquet", split="train")'
        if "parquet" in formats
        else f'ds = load_dataset("json", data_files="{name}/{name}.jsonl", split="train")'
    )
    body = f"""# {name} (export v{version:04d})

{warning}Verified medical chain-of-thought data grown by the ReasonMed pipeline: each row is one question and one
accepted reasoning path; `output` is {DESCRIPTIONS.get(name, "")}. Benchmark-test questions and questions
that match them are excluded.

Rows: **{rows}** (layout `{layout}`, formats: {", ".join(formats)})

| source | rows |
|---|---|
{sources}

## Columns

{columns}
- `answer`: the gold answer label; `question_id`, `source`, `source_id`, `path_id`, `verdict_id`,
  `summary_id`, `run_id`, `model`, `temperature`, `origin`: trace every row to its provenance

## Loading

```python
from datasets import load_dataset
{loading}
```

{loader}

Files: {", ".join(f"`{f}`" for f in files)}

{provenance_section(provenance, config_hashes)}"""
    return "---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---\n\n" + body


def hub_repo_card(version_card: str, *, version_dir: str, repo_id: str, versions: Sequence[str]) -> str:
    """The Hub repository's root ``README.md``: ``version_dir``'s root card (``render_hub_card``), its configs'
    files and licence link moved into ``version_dir/``, so ``load_dataset(repo_id, "CoTMed")`` reads the
    latest version; ``versions`` (every version folder in the repository, this one included) are listed."""
    _, front_text, body = version_card.split("---\n", 2)
    front = yaml.safe_load(front_text)
    for config in front.get("configs", []):
        for entry in config.get("data_files", []):
            entry["path"] = f"{version_dir}/{entry['path']}"
    front["license_link"] = f"{version_dir}/{front.get('license_link', LICENSE_FILE)}"
    folders = ", ".join(f"`{v}/`" for v in sorted(versions))
    note = (
        f"This repository keeps every exported version in its own folder ({folders}); the configs read the "
        f"latest, `{version_dir}`. Each version arrived as one commit whose message names it: for an earlier "
        f'one, pass that commit as `revision=` (`load_dataset("{repo_id}", "CoTMed", revision=...)`), or its '
        "files as `data_files=` (its folder's `README.md` names them). Each folder's `manifest.json` lists "
        "the sha256 of every file in it.\n\n"
    )
    body = body.replace(f'load_dataset("path/to/{version_dir}"', f'load_dataset("{repo_id}"')
    title, _, rest = body.lstrip("\n").partition("\n\n")
    return (
        "---\n"
        + yaml.safe_dump(front, sort_keys=False, allow_unicode=True)
        + "---\n\n"
        + f"{title}\n\n{note}{rest}"
    )
