"""The dataset card (``README.md`` with YAML front matter) the Hugging Face Hub and ``datasets`` read."""

from __future__ import annotations

import yaml

DESCRIPTIONS = {
    "ReasonMed": "the full verified chain of thought, a blank line, then the concise summary (the paper's best set)",
    "CoTMed": "the verified chain of thought only",
    "ResponseMed": "the concise summary only",
}


def size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"


def render_card(
    name: str, *, version: int, rows: int, by_source: dict[str, int], layout: str, formats: list[str],
    files: list[str], simulated_rows: int = 0,
) -> str:
    front = {
        "pretty_name": name,
        "language": ["en"],
        "license": "other",
        "task_categories": ["question-answering", "text-generation"],
        "tags": ["medical", "chain-of-thought", "reasonmed", "synthetic"] + (["simulated"] if simulated_rows else []),
        "size_categories": [size_category(rows)],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}],
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
        "be used to train or evaluate a model.**\n\n" if simulated_rows else ""
    )
    body = f"""# {name} (export v{version:04d})

{warning}Verified medical chain-of-thought data grown by the ReasonMed pipeline: each row is one question and one
accepted reasoning path; `output` is {DESCRIPTIONS.get(name, '')}. Benchmark-test questions and questions
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
ds = load_dataset("parquet", data_files="{name}/data/train-*.parquet", split="train")
```

{loader}

Files: {", ".join(f"`{f}`" for f in files)}
"""
    return "---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---\n\n" + body
