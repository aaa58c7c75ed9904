"""What the Prefect UI's run form shows for each deployment: the parameter schema Prefect builds from the
flow's type hints and its ``Args:`` docstring, as ``prefect deploy`` (from the entrypoint's source) and
``reasonmed serve`` (from the imported flow) send it. Every parameter has a description; every parameter
with a fixed set of values offers exactly the values the code accepts."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from prefect.utilities.callables import parameter_schema, parameter_schema_from_entrypoint

from reasonmed.db.claims_repo import PRIORITIES
from reasonmed.evaluation.benchmarks import BENCHMARKS
from reasonmed.evaluation.judge_modes import JUDGE_MODES
from reasonmed.evaluation.scoring import VARIANTS
from reasonmed.export.assemble import LAYOUTS
from reasonmed.flows.deployments import PREFECT_FILE, load_flow
from reasonmed.ingest.loaders import FORMATS

SPEC = yaml.safe_load(PREFECT_FILE.read_text())
DEPLOYMENTS = {d["name"]: d for d in SPEC["deployments"]}
QUESTION_SOURCES = ["medqa", "medmcqa", "pubmedqa", "mmlu", "custom"]  # what questions.source holds (loaders)
EXPORT_FORMATS = ["parquet", "jsonl"]

# deployment -> parameter -> the choices the form must offer (the lists the code checks values against)
CHOICES: dict[str, dict[str, list[Any]]] = {
    "nightly": {
        "source": list(FORMATS),
        "priority": list(PRIORITIES),
        "sources": QUESTION_SOURCES,
        "export_formats": EXPORT_FORMATS,
        "export_layout": list(LAYOUTS),
    },
    "build": {"sources": QUESTION_SOURCES, "priority": list(PRIORITIES)},
    "export": {"formats": EXPORT_FORMATS, "layout": list(LAYOUTS)},
    "ingest": {"source": list(FORMATS), "cop_base": ["auto", "0", "1"], "answer_index_base": [0, 1]},
    "eval": {"benchmarks": list(BENCHMARKS)},
    "score": {"variants": list(VARIANTS), "judge_mode": list(JUDGE_MODES)},
    "report": {},
}


def _enums(node: Any) -> list[list[Any]]:
    """Every ``enum`` list anywhere in a property's schema (a list's items, an optional's anyOf)."""
    if isinstance(node, dict):
        found = [node["enum"]] if "enum" in node else []
        return found + [e for v in node.values() for e in _enums(v)]
    if isinstance(node, list):
        return [e for v in node for e in _enums(v)]
    return []


def test_every_deployment_of_the_file_is_covered() -> None:
    assert set(DEPLOYMENTS) == set(CHOICES)


@pytest.mark.parametrize("name", sorted(CHOICES))
def test_the_run_form_has_choices_and_help_for_every_parameter(name: str) -> None:
    entrypoint = DEPLOYMENTS[name]["entrypoint"]
    flow = load_flow(entrypoint)
    from_flow = parameter_schema(flow.fn).model_dump_for_openapi()
    from_source = parameter_schema_from_entrypoint(entrypoint).model_dump_for_openapi()
    assert from_source == from_flow  # what `prefect deploy` sends is what `reasonmed serve` sends
    props = from_flow["properties"]
    assert props, name
    undocumented = [p for p, schema in props.items() if len(schema.get("description") or "") < 10]
    assert not undocumented, f"{name}: parameters without a description: {undocumented}"
    for param, schema in props.items():
        expected = CHOICES[name].get(param)
        assert _enums(schema) == ([expected] if expected else []), f"{name}.{param}: {schema}"


def _valid_parameters(name: str) -> dict[str, Any]:
    """The file's parameters, plus a value for each required parameter the file leaves to the run form."""
    spec = DEPLOYMENTS[name]
    flow = load_flow(spec["entrypoint"])
    given = dict(spec.get("parameters") or {})
    examples = {"model_endpoint": "sim-qwen", "dataset_version": 1, "paths": ["a.json"], "source": "medqa"}
    return {**given, **{p: examples[p] for p in flow.parameters.required if p not in given}}


@pytest.mark.parametrize("name", sorted(CHOICES))
def test_the_files_parameters_pass_the_flows_validation(name: str) -> None:
    """A stale choice left in deploy/prefect.yaml fails here, not on the first night."""
    flow = load_flow(DEPLOYMENTS[name]["entrypoint"])
    flow.validate_parameters(_valid_parameters(name))


@pytest.mark.parametrize(("name", "param"), [(n, p) for n, ps in sorted(CHOICES.items()) for p in ps])
def test_a_value_outside_the_choices_is_refused_before_the_flow_starts(name: str, param: str) -> None:
    from prefect.exceptions import ParameterTypeError

    flow = load_flow(DEPLOYMENTS[name]["entrypoint"])
    is_list = any(
        s.get("type") == "array"
        for s in [flow.parameters.properties[param], *flow.parameters.properties[param].get("anyOf", [])]
    )
    wrong = ["no-such-choice"] if is_list else "no-such-choice"
    with pytest.raises(ParameterTypeError):
        flow.validate_parameters({**_valid_parameters(name), param: wrong})


def test_the_file_pulls_the_code_explicitly_and_schedules_in_utc() -> None:
    assert SPEC["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $REASONMED_CODE_DIR }}"}}
    ]
    (schedule,) = DEPLOYMENTS["nightly"]["schedules"]
    assert schedule["timezone"] == "UTC"
    for spec in DEPLOYMENTS.values():  # every worker run ships reasonmed.* log lines to the UI
        env = spec["work_pool"]["job_variables"]["env"]
        assert env["PREFECT_LOGGING_EXTRA_LOGGERS"] == "reasonmed"
