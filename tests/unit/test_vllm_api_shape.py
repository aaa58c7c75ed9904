"""vLLM's API has the shape the in-process backend (reasonmed/llm/vllm_backend.py) relies on.

Every entry point, parameter and attribute the backend uses (``tests/fake_vllm.py``'s ``USED``, and the
engine args the deploy files set) is looked up with ``inspect``, without running an engine: against the
stand-in ``vllm`` the offline tests use (always: it must keep mirroring what it claims to), and against
the real ``vllm`` where it is installed (a GPU machine; ``pip install -e ".[vllm]"``). Without vLLM that
second test is skipped, not failed: vLLM cannot be installed without a GPU, so CI never has it.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import fake_vllm as fv

REPO = Path(__file__).resolve().parents[2]
# tests/integration/test_llm_vllm.py's engine_args (it runs the real engine on a GPU machine).
INTEGRATION_ENGINE_ARGS = ("max_model_len", "gpu_memory_utilization", "enforce_eager")


def engine_args_used() -> set[str]:
    """``model`` and every ``engine_args`` key a deploy file gives a ``kind: vllm`` endpoint."""
    keys = {"model", *INTEGRATION_ENGINE_ARGS}
    for path in sorted((REPO / "deploy").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text()) or {}
        for endpoint in (doc.get("endpoints") or {}).values():
            if isinstance(endpoint, dict) and endpoint.get("kind") == "vllm":
                keys |= set(endpoint.get("engine_args") or {})
    return keys


def _names(obj: Any) -> set[str]:
    """Constructor parameters / fields of a class: msgspec Struct, dataclass, TypedDict or plain class."""
    if (fields := getattr(obj, "__struct_fields__", None)) is not None:
        return set(fields)
    if dataclasses.is_dataclass(obj):
        return {f.name for f in dataclasses.fields(obj)}
    if hasattr(obj, "__required_keys__"):
        return set(obj.__required_keys__) | set(obj.__optional_keys__)
    return set(inspect.signature(obj).parameters)


def _binds(fn: Any, *args: Any) -> str | None:
    """None when ``fn`` takes these positional arguments (and nothing else required), else why not."""
    try:
        inspect.signature(fn).bind(*args)
    except TypeError as exc:
        return str(exc)
    return None


def shape_problems(vllm: Any) -> list[str]:
    """What the backend uses that ``vllm`` (the real package or the stand-in) lacks."""
    sampling = importlib.import_module("vllm.sampling_params")
    problems: list[str] = []

    def need(what: str, have: set[str], used: set[str] | tuple[str, ...]) -> None:
        if missing := sorted(set(used) - have):
            problems.append(f"{what} lacks {missing}")

    need("AsyncEngineArgs", _names(vllm.AsyncEngineArgs), engine_args_used())
    engine = vllm.AsyncLLMEngine
    # The backend calls these positionally: from_engine_args(args), generate(prompt, params, request_id),
    # get_tokenizer(), shutdown() (when there is one: vLLM's V0 engine had none).
    for what, fn, args in [
        ("AsyncLLMEngine.from_engine_args", engine.from_engine_args, (object(),)),
        ("AsyncLLMEngine.generate", engine.generate, (None, {}, object(), "id")),
        ("AsyncLLMEngine.get_tokenizer", engine.get_tokenizer, (None,)),
        ("AsyncLLMEngine.shutdown", getattr(engine, "shutdown", lambda self: None), (None,)),
    ]:
        if (why := _binds(fn, *args)) is not None:
            problems.append(f"{what} cannot be called as the backend does: {why}")
    if not inspect.isasyncgenfunction(engine.generate):
        problems.append("AsyncLLMEngine.generate is not an async generator")
    constraint = "structured_outputs" if hasattr(sampling, "StructuredOutputsParams") else "guided_decoding"
    used = tuple(p for p in fv.USED["SamplingParams"] if p != "structured_outputs") + (constraint,)
    need("SamplingParams", _names(vllm.SamplingParams), used)
    params_cls = getattr(sampling, "StructuredOutputsParams", None) or sampling.GuidedDecodingParams
    need(params_cls.__name__, _names(params_cls), fv.USED["StructuredOutputsParams"])
    kind = getattr(sampling, "RequestOutputKind", None)
    if kind is not None and not hasattr(kind, "FINAL_ONLY"):
        problems.append("RequestOutputKind lacks FINAL_ONLY")
    need("RequestOutput", _names(vllm.RequestOutput), fv.USED["RequestOutput"])
    need("CompletionOutput", _names(vllm.CompletionOutput), fv.USED["CompletionOutput"])
    need("TokensPrompt", _names(vllm.TokensPrompt), fv.USED["TokensPrompt"])
    return problems


def refusal_problems() -> list[str]:
    """vLLM's validation error is one of the exceptions the backend classifies as a refusal."""
    from reasonmed.llm.vllm_backend import _refusals

    try:
        exceptions = importlib.import_module("vllm.exceptions")
    except ImportError:
        return []
    error = getattr(exceptions, "VLLMValidationError", None)
    if error is not None and not issubclass(error, _refusals()):
        return [f"VLLMValidationError ({error.__mro__}) is not classified as a refusal"]
    return []


def template_problems(tokenizer_cls: Any) -> list[str]:
    """``apply_chat_template`` takes what the backend passes (or takes any keyword)."""
    parameters = inspect.signature(tokenizer_cls.apply_chat_template).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return []
    missing = sorted({"tokenize", "add_generation_prompt", "return_dict"} - set(parameters))
    return [f"{tokenizer_cls.__name__}.apply_chat_template lacks {missing}"] if missing else []


def test_the_stand_in_has_the_shape_the_backend_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    vllm = fv.install(monkeypatch)
    assert shape_problems(vllm) == []
    assert refusal_problems() == []
    assert template_problems(fv.Tokenizer) == []
    # the engine args in the deploy files are what this checked: the file's own keys, not an empty set
    assert {"max_model_len", "max_num_seqs", "enable_prefix_caching"} <= engine_args_used()


def test_the_installed_vllm_has_the_shape_the_backend_uses() -> None:
    vllm = pytest.importorskip(
        "vllm",
        reason="vLLM is not installed (it needs a GPU; optional extra [vllm]): the stand-in was checked instead",
    )
    assert shape_problems(vllm) == []
    assert refusal_problems() == []
    transformers = pytest.importorskip("transformers")
    tokenizer_base = getattr(transformers, "PreTrainedTokenizerBase", None)
    if tokenizer_base is not None:
        assert template_problems(tokenizer_base) == []
