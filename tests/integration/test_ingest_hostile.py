"""Hostile input, table-driven per loader: each malformed record costs only itself.

Every table plants its cases between valid records in ONE file, ingests it once, and asserts for each case
the error row's reason (or that it was stored), that every valid record around it was stored, that no
other error row exists, and that the file ended 'done'. The limits are small so huge cases stay cheap.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from reasonmed.db.models import IngestError, IngestFile
from reasonmed.db.models import Question as QRow
from reasonmed.ingest.loaders import Limits
from reasonmed.ingest.service import ingest_file

LIMITS = Limits(max_record_bytes=4096, max_field_chars=1000, max_depth=16)
STORED = None  # expected outcome: the record is valid and stored
SKIPPED = "<skipped>"  # expected outcome: not a record at all (no row, no error)


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes  # the record exactly as it sits in the file (a line, a member, a row)
    reason: str | None  # the error row's reason starts with this; STORED / SKIPPED otherwise
    stored_id: str | None = None  # the id a STORED case is kept under
    last: bool = False  # only at the very end of the file (truncation), with no newline after it


def j(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def nest(depth: int) -> Any:
    v: Any = "leaf"
    for _ in range(depth):
        v = {"x": v}
    return v


@dataclass
class Planted:
    data: bytes
    expect: list[tuple[Case, str]]  # (case, record ref)
    good_ids: list[str]


def run_table(
    engine: Engine, tmp_path: Path, source: str, planted: Planted, name: str, **kw: Any
) -> dict[str, str]:
    path = tmp_path / name
    path.write_bytes(planted.data)
    s = ingest_file(engine, path, source, limits=LIMITS, **kw)
    with Session(engine) as ses:
        ids = set(ses.scalars(select(QRow.source_id)))
        errs = {e.record_ref: e.reason for e in ses.scalars(select(IngestError))}
        status, error = ses.execute(select(IngestFile.status, IngestFile.error)).one()
    assert (status, error) == ("done", None)
    missing = set(planted.good_ids) - ids
    assert not missing, f"valid records around the bad ones were lost: {sorted(missing)}"
    problems = []
    expected_refs = set()
    for case, ref in planted.expect:
        ref = ref[:200]  # record_ref is VARCHAR(200)
        if case.reason is STORED:
            if case.stored_id not in ids:
                problems.append(
                    f"{case.name}: expected stored as {case.stored_id!r}, got error {errs.get(ref)!r}"
                )
        elif case.reason == SKIPPED:
            if ref in errs:
                problems.append(f"{case.name}: expected skipped, got error {errs[ref]!r}")
        else:
            expected_refs.add(ref)
            got = errs.get(ref)
            if got is None or not got.startswith(case.reason):
                problems.append(f"{case.name} ({ref}): expected {case.reason!r}, got {got!r}")
    extra = {r: e for r, e in errs.items() if r not in expected_refs}
    assert not problems, "\n".join(problems)
    assert not extra, f"unexpected error rows: {extra}"
    assert s.rejected == len(expected_refs) and s.status == "done"
    return errs


# --------------------------------------------------------------------------- JSON lines (MedQA, MedMCQA, generic)


def plant_lines(good: Callable[[int], dict[str, Any]], cases: list[Case]) -> Planted:
    lines: list[bytes] = [j(good(0))]
    goods = ["g0"]
    expect = []
    for k, c in enumerate([c for c in cases if not c.last], 1):
        lines.append(c.data)
        expect.append((c, f"line {len(lines)}"))
        lines.append(j(good(k)))
        goods.append(f"g{k}")
    data = b"\n".join(lines) + b"\n"
    for c in cases:
        if c.last:
            data += c.data
            expect.append((c, f"line {len(lines) + 1}"))
    return Planted(data, expect, goods)


def json_line_cases(base: dict[str, Any], qkey: str = "question") -> list[Case]:
    """Cases every JSON-lines loader meets, built on one valid record of its format."""

    def rec(**changes: Any) -> dict[str, Any]:
        return {**base, **changes}

    text = j(rec(id="enc"))
    return [
        Case(
            "not JSON",
            b'{"id": "x", "question": "unterminated',
            "line is not valid JSON (Unterminated string",
        ),
        Case("invalid UTF-8 byte", text.replace(b'"enc"', b'"\xff"'), "line is not valid UTF-8 (byte 0xff"),
        Case("overlong UTF-8", text.replace(b'"enc"', b'"\xc0\xaf"'), "line is not valid UTF-8 (byte 0xc0"),
        Case(
            "UTF-16 line",
            json.dumps(rec(id="u16")).encode("utf-16"),
            "line is not valid UTF-8 (byte 0xff at position 0",
        ),
        Case(
            "latin-1 text",
            text.replace(b'"enc"', b'"' + "caf\u00e9".encode("latin-1") + b'"'),
            "line is not valid UTF-8 (byte 0xe9",
        ),
        Case(
            "raw NUL byte",
            text.replace(b'"enc"', b'"a\x00b"'),
            "line is not valid JSON (Invalid control character",
        ),
        Case("escaped NUL", j(rec(id="nul", **{qkey: "What \u0000 now?"})), "text contains a NUL character"),
        Case(
            "lone surrogate",
            j(rec(id="sur")).replace(b'"sur"', b'"s\\ud800"'),
            "text contains an unpaired surrogate",
        ),
        Case(
            "BOM mid-file",
            b"\xef\xbb\xbf" + j(rec(id="bom", **{qkey: "After a joined file's BOM?"})),
            STORED,
            "bom",
        ),
        Case(
            "pathological nesting",
            b"[" * 2000 + b"]" * 2000,
            "line is JSON nested too deeply (limit 16 levels)",
        ),
        Case(
            "nesting in an extra field", j(rec(id="deep", extra=nest(20))), "line is JSON nested too deeply"
        ),
        Case(
            "huge line",
            j(rec(id="huge", **{qkey: "x" * 100_000})),
            "line is larger than the record limit (100,",
        ),
        Case(
            "huge field",
            j(rec(id="big", **{qkey: "y" * 2000})),
            f"{qkey} is longer than the field limit (2,000 characters > 1,000",
        ),
        Case(
            "NaN",
            j(rec(id="nan")).replace(b'"nan"', b"NaN"),
            "line is not valid JSON (NaN is not a number JSON allows)",
        ),
        Case(
            "Infinity",
            j(rec(id="inf")).replace(b'"inf"', b"Infinity"),
            "line is not valid JSON (Infinity is not",
        ),
        Case(
            "-Infinity",
            j(rec(id="ninf")).replace(b'"ninf"', b"-Infinity"),
            "line is not valid JSON (-Infinity is not",
        ),
        Case("JSON list", b"[1, 2, 3]", "line is a JSON list, not an object"),
        Case("JSON string", b'"just text"', "line is a JSON string, not an object"),
        Case("JSON null", b"null", "line is a JSON null, not an object"),
        Case("JSON number", b"42", "line is a JSON number, not an object"),
        Case("question a number", j(rec(id="q1", **{qkey: 12})), f"{qkey} is a number, not text"),
        Case("question a list", j(rec(id="q2", **{qkey: ["a", "b"]})), f"{qkey} is a list, not text"),
        Case("question an object", j(rec(id="q3", **{qkey: {"t": "x"}})), f"{qkey} is an object, not text"),
        Case("question a boolean", j(rec(id="q4", **{qkey: True})), f"{qkey} is a boolean, not text"),
        Case("question null", j(rec(id="q5", **{qkey: None})), "empty question text"),
        Case("question blank", j(rec(id="q6", **{qkey: " \t\u00a0 "})), "empty question text"),
        Case("id an object", j(rec(id={"k": 1})), "id is an object, not text or a whole number"),
        Case("id a fraction", j(rec(id=1.5)), "id is a number, not text or a whole number"),
        Case("id a list", j(rec(id=[1])), "id is a list, not text or a whole number"),
        Case("id a boolean", j(rec(id=False)), "id is a boolean, not text or a whole number"),
        Case("id too long", j(rec(id="i" * 300)), "id is longer than 200 characters"),
        Case("CRLF line end", j(rec(id="crlf", **{qkey: "Ends with CRLF?"})) + b"\r", STORED, "crlf"),
        Case(
            "extra data after the object",
            j(rec(id="xd")) + b" trailing",
            "line is not valid JSON (Extra data",
        ),
        Case(
            "two objects on a line",
            j(rec(id="two")) + j(rec(id="three")),
            "line is not valid JSON (Extra data",
        ),
        Case("blank line", b"   \t", SKIPPED),
        Case("truncated file", j(rec(id="cut"))[:30], "line is not valid JSON", last=True),
    ]


def medqa_good(i: int) -> dict[str, Any]:
    return {
        "id": f"g{i}",
        "question": f"Good MedQA question number {i}?",
        "options": {"A": "alpha", "B": "beta", "C": "gamma", "D": "delta"},
        "answer_idx": "B",
        "answer": "beta",
    }


def medqa_cases() -> list[Case]:
    base = {**medqa_good(999), "id": "m"}

    def rec(id_: str, **changes: Any) -> bytes:
        return j({**base, "id": id_, "question": f"MedQA case {id_}?", **changes})

    opts = base["options"]
    return json_line_cases(base) + [
        Case("empty object", b"{}", "options missing or not an object of label: text"),
        Case(
            "options a list",
            rec("o1", options=["alpha", "beta"]),
            "options missing or not an object of label: text",
        ),
        Case(
            "options a string",
            rec("o2", options="A: alpha"),
            "options missing or not an object of label: text",
        ),
        Case(
            "option an object", rec("o3", options={**opts, "A": {"t": 1}}), "option A is an object, not text"
        ),
        Case("option a boolean", rec("o4", options={**opts, "C": False}), "option C is a boolean, not text"),
        Case("option a list", rec("o5", options={**opts, "D": ["d"]}), "option D is a list, not text"),
        Case("options empty", rec("o6", options={}, answer=None), "fewer than 2 options (0)"),
        Case(
            "option with empty label",
            rec("o7", options={**opts, "": "blank"}),
            "an option has an empty label",
        ),
        Case("option a number", rec("o8", options={**opts, "D": 42}), STORED, "o8"),
        Case("answer_idx a list", rec("a1", answer_idx=["B"]), "answer_idx is a list, not an option label"),
        Case(
            "answer_idx a fraction", rec("a2", answer_idx=1.5), "answer_idx is a number, not an option label"
        ),
        Case(
            "answer_idx a boolean", rec("a3", answer_idx=True), "answer_idx is a boolean, not an option label"
        ),
        Case(
            "answer_idx an object",
            rec("a4", answer_idx={"B": 1}),
            "answer_idx is an object, not an option label",
        ),
        Case(
            "answer_idx not an option",
            rec("a5", answer_idx="Z", answer=None),
            "answer 'Z' is not among the options (A, B, C, D)",
        ),
        Case("answer text a number", rec("a6", answer=5), "answer is a number, not text"),
        Case(
            "answer text names another option",
            rec("a7", answer="gamma"),
            "answer_idx 'B' and answer text 'gamma' disagree (the text names option C)",
        ),
        Case(
            "answer text a prefix of the labelled option",
            rec("a8", options={**opts, "B": "Thiamine (B1)"}, answer="Thiamine"),
            STORED,
            "a8",
        ),
        Case("answer text differently spaced and cased", rec("a9", answer="  BETA "), STORED, "a9"),
        Case("answer text naming no option", rec("a10", answer="something else"), STORED, "a10"),
        Case("no answer at all", rec("a11", answer_idx=None, answer=None), "no answer"),
    ]


def medmcqa_good(i: int) -> dict[str, Any]:
    return {
        "id": f"g{i}",
        "question": f"Good MedMCQA question number {i}?",
        "opa": "alpha",
        "opb": "beta",
        "opc": "gamma",
        "opd": "delta",
        "cop": 2,
        "subject_name": "Anatomy",
    }


def medmcqa_cases() -> list[Case]:
    base = {**medmcqa_good(999), "id": "m"}

    def rec(id_: str, **changes: Any) -> bytes:
        return j({**base, "id": id_, "question": f"MedMCQA case {id_}?", **changes})

    return json_line_cases(base) + [
        Case("empty object", b"{}", "no answer"),
        Case("cop a fraction", rec("c1", cop=1.5), "cop is not a whole number (got '1.5')"),
        Case("cop fractional text", rec("c2", cop="1.5"), "cop is not a whole number (got '1.5')"),
        Case("cop a word", rec("c3", cop="two"), "cop is not a whole number (got 'two')"),
        Case("cop a boolean", rec("c4", cop=True), "cop is not a whole number (got 'True')"),
        Case("cop a list", rec("c5", cop=[1]), "cop is not a whole number (got '[1]')"),
        Case("cop an object", rec("c6", cop={"v": 1}), "cop is not a whole number"),
        Case("cop out of range high", rec("c7", cop=9), "cop out of range (got 9, expected 1-4)"),
        Case("cop out of range low", rec("c8", cop=-1), "cop out of range (got -1, expected 1-4)"),
        Case("cop missing", rec("c9", cop=None), "no answer"),
        Case(
            "cop NaN",
            rec("c10", cop="NaN-marker").replace(b'"NaN-marker"', b"NaN"),
            "line is not valid JSON (NaN is not a number JSON allows)",
        ),
        Case("cop an integral float", rec("c11", cop=2.0), STORED, "c11"),
        Case("cop as digits", rec("c12", cop="3"), STORED, "c12"),
        Case("option an object", rec("p1", opa={"t": 1}), "option A is an object, not text"),
        Case("option a boolean", rec("p2", opb=True), "option B is a boolean, not text"),
        Case("option a list", rec("p3", opc=["x"]), "option C is a list, not text"),
        Case(
            "option missing",
            j({k: v for k, v in json.loads(rec("p4")).items() if k != "opd"}),
            "option D has empty text",
        ),
        Case("option a number", rec("p5", opd=42), STORED, "p5"),
    ]


def generic_good(i: int) -> dict[str, Any]:
    return {
        "id": f"g{i}",
        "question": f"Good generic question number {i}?",
        "options": ["alpha", "beta", "gamma"],
        "answer": "B",
    }


def generic_cases() -> list[Case]:
    base = {**generic_good(999), "id": "m"}

    def rec(id_: str, **changes: Any) -> bytes:
        return j({**base, "id": id_, "question": f"Generic case {id_}?", **changes})

    return json_line_cases(base) + [
        Case("empty object", b"{}", "missing required column 'question'"),
        Case(
            "answer column missing",
            j({k: v for k, v in base.items() if k != "answer"}),
            "missing required column 'answer'",
        ),
        Case(
            "options a number", rec("o1", options=7), "options cell holds a number, not an object or a list"
        ),
        Case("options JSON text broken", rec("o2", options="[1,"), "options cell is not valid JSON"),
        Case(
            "options JSON text with NaN",
            rec("o3", options="[NaN, 1]"),
            "option A is nan (NaN or Infinity), not text",
        ),
        Case("option an object", rec("o4", options=["a", {"t": 1}]), "option B is an object, not text"),
        Case("options as JSON text", rec("o5", options='{"A": "one", "B": "two"}'), STORED, "o5"),
        Case(
            "answer a boolean",
            rec("a1", answer=True),
            "answer is a boolean, not a label, an option text or an index",
        ),
        Case("answer a list", rec("a2", answer=["B"]), "answer is a list, not a label"),
        Case("answer an object", rec("a3", answer={"B": 1}), "answer is an object, not a label"),
        Case(
            "answer a fraction",
            rec("a4", answer=1.5),
            "answer 1.5 is not a whole number, so it names no option",
        ),
        Case(
            "answer an index without a base",
            rec("a5", answer=2),
            "answer '2' is not among the options (A, B, C; pass an answer index base",
        ),
        Case("answer not an option", rec("a6", answer="Z"), "answer 'Z' is not among the options (A, B, C)"),
        Case("context an object", rec("x1", context={"t": 1}), "context is an object, not text"),
        Case("context a number", rec("x2", context=3), "context is a number, not text"),
        Case("huge context", rec("x3", context="c" * 2000), "context is longer than the field limit"),
    ]


@pytest.mark.parametrize(
    ("source", "good", "cases", "kw"),
    [
        ("medqa", medqa_good, medqa_cases, {}),
        ("medmcqa", medmcqa_good, medmcqa_cases, {"cop_base": 1}),
        ("jsonl", generic_good, generic_cases, {}),
    ],
)
def test_json_lines_loader_table(
    source: str,
    good: Callable[[int], dict[str, Any]],
    cases: Callable[[], list[Case]],
    kw: dict[str, Any],
    tmp_path: Path,
    engine: Engine,
) -> None:
    table = cases()
    assert len([c for c in table if c.reason is not STORED and c.reason != SKIPPED]) >= 30
    run_table(engine, tmp_path, source, plant_lines(good, table), f"hostile.{source}.jsonl", **kw)


# --------------------------------------------------------------------------- PubMedQA (one JSON object)


def pubmedqa_good(i: int) -> bytes:
    return b'"g%d": ' % i + j(
        {
            "QUESTION": f"Is good PubMedQA record {i} valid?",
            "CONTEXTS": ["Some context."],
            "LABELS": ["BACKGROUND"],
            "final_decision": "yes",
        }
    )


def pubmedqa_cases() -> list[Case]:
    base = {
        "QUESTION": "A PubMedQA case?",
        "CONTEXTS": ["Context."],
        "LABELS": ["METHODS"],
        "final_decision": "no",
    }

    def m(key: str, value: Any = None, raw: bytes | None = None, **changes: Any) -> bytes:
        body = (
            raw
            if raw is not None
            else j({**base, "QUESTION": f"PubMedQA case {key}?", **changes} if value is None else value)
        )
        return j(key) + b": " + body

    return [
        Case("record a list", m("l", [1, 2]), "record is a JSON list, not an object"),
        Case("record a string", m("s", "text"), "record is a JSON string, not an object"),
        Case("record null", m("n", raw=b"null"), "record is a JSON null, not an object"),
        Case("record a number", m("num", 5), "record is a JSON number, not an object"),
        Case("empty record", m("e", {}), "no answer"),
        Case("QUESTION a number", m("q1", QUESTION=3), "QUESTION is a number, not text"),
        Case("QUESTION a list", m("q2", QUESTION=["a"]), "QUESTION is a list, not text"),
        Case("QUESTION an object", m("q3", QUESTION={"a": 1}), "QUESTION is an object, not text"),
        Case("QUESTION null", m("q4", QUESTION=None), "empty question text"),
        Case("CONTEXTS a number", m("c1", CONTEXTS=4), "CONTEXTS is a number, not a list of texts"),
        Case(
            "CONTEXTS an object", m("c2", CONTEXTS={"a": "b"}), "CONTEXTS is an object, not a list of texts"
        ),
        Case(
            "CONTEXTS holding an object",
            m("c3", CONTEXTS=["ok", {"a": 1}]),
            "CONTEXTS holds an object, not only texts",
        ),
        Case("LABELS a number", m("b1", LABELS=1), "LABELS is a number, not a list of texts"),
        Case("LABELS holding a number", m("b2", LABELS=[1]), "LABELS holds a number, not only texts"),
        Case("final_decision a number", m("d1", final_decision=1), "final_decision is a number, not text"),
        Case("final_decision a list", m("d2", final_decision=["yes"]), "final_decision is a list, not text"),
        Case("final_decision null", m("d3", final_decision=None), "no answer"),
        Case(
            "final_decision not an option",
            m("d4", final_decision="perhaps"),
            "answer 'perhaps' is not among the options (yes, no, maybe)",
        ),
        Case("invalid UTF-8", m("u1").replace(b"case u1", b"case \xff"), "record is not valid UTF-8"),
        Case(
            "latin-1", m("u2").replace(b"case u2", "caf\u00e9".encode("latin-1")), "record is not valid UTF-8"
        ),
        Case("invalid UTF-8 key", b'"k\xfe": ' + j(base), "record is not valid UTF-8"),
        Case("NaN", m("nan", raw=j(base).replace(b'"no"', b"NaN")), "record is not valid JSON (NaN is not"),
        Case(
            "Infinity",
            m("inf", raw=j(base).replace(b'"no"', b"Infinity")),
            "record is not valid JSON (Infinity is not",
        ),
        Case(
            "pathological nesting",
            m("deep", raw=b"[" * 2000 + b"]" * 2000),
            "record is JSON nested too deeply",
        ),
        Case(
            "nesting in an extra field",
            m("deep2", extra=nest(20)),
            "record is JSON nested too deeply (limit 16",
        ),
        Case("huge record", m("huge", QUESTION="x" * 100_000), "record is larger than the record limit"),
        Case("huge field", m("big", QUESTION="y" * 2000), "question is longer than the field limit (2,000"),
        Case("escaped NUL", m("nul", QUESTION="What \u0000?"), "text contains a NUL character"),
        Case(
            "lone surrogate",
            m("sur").replace(b"case sur", b"case \\udc00"),
            "text contains an unpaired surrogate",
        ),
        Case(
            "syntax error inside",
            m("syn", raw=b'{"QUESTION": "a" "b", "final_decision": "yes"}'),
            "record is not valid JSON (Expecting ',' delimiter)",
        ),
        Case("empty key", m("", QUESTION="Empty key?"), "record has an empty key, so it has no id"),
        Case("key too long", m("k" * 300), "id is longer than 200 characters"),
        Case("BOM between records", b"\xef\xbb\xbf" + m("bom"), STORED, "bom"),
        Case("truncated file", m("cut")[:25], "the file ends inside this record (truncated?)", last=True),
    ]


def plant_object(cases: list[Case]) -> Planted:
    parts = [pubmedqa_good(0)]
    goods, expect = ["g0"], []
    for k, c in enumerate([c for c in cases if not c.last], 1):
        parts.append(c.data)
        key = (
            json.loads(c.data.split(b'": ', 1)[0].lstrip(b"\xef\xbb\xbf") + b'"')
            if b"\xfe" not in c.data
            else "k\ufffd"
        )
        expect.append((c, f"record {key}"))
        parts.append(pubmedqa_good(k))
        goods.append(f"g{k}")
    data = b"{" + b",\n".join(parts)
    lasts = [c for c in cases if c.last]
    if lasts:
        data += b",\n" + lasts[0].data
        expect.append((lasts[0], "record cut"))
    else:
        data += b"}"
    return Planted(data, expect, goods)


def test_pubmedqa_loader_table(tmp_path: Path, engine: Engine) -> None:
    table = pubmedqa_cases()
    assert len([c for c in table if c.reason is not STORED]) >= 30
    run_table(engine, tmp_path, "pubmedqa", plant_object(table), "hostile_pqal.json")


def test_pubmedqa_missing_comma_is_reported_and_reading_goes_on(tmp_path: Path, engine: Engine) -> None:
    path = tmp_path / "nocomma.json"
    path.write_bytes(b"{" + pubmedqa_good(0) + b"\n" + pubmedqa_good(1) + b",\n" + pubmedqa_good(2) + b"}")
    s = ingest_file(engine, path, "pubmedqa", limits=LIMITS)
    with Session(engine) as ses:
        assert set(ses.scalars(select(QRow.source_id))) == {"g0", "g1", "g2"}
        assert [(e.record_ref, e.reason) for e in ses.scalars(select(IngestError))] == [
            ("after record 1", "expected ',' after record 1")
        ]
    assert s.inserted == 3


# --------------------------------------------------------------------------- CSV (MMLU)


def mmlu_row(i: int) -> bytes:
    return f'"Good MMLU question number {i}?",alpha,beta,gamma,delta,B'.encode()


def mmlu_cases() -> list[Case]:
    def row(q: str, *cells: str) -> bytes:
        cells = cells or ("alpha", "beta", "gamma", "delta", "B")
        return ",".join([f'"{q}"', *cells]).encode()

    return [
        Case(
            "five columns",
            row("Five?", "a", "b", "c", "d"),
            "wrong number of columns (expected 6: question, A, B, C, D, answer; got 5)",
        ),
        Case(
            "seven columns",
            row("Seven?", "a", "b", "c", "d", "B", "extra"),
            "wrong number of columns (expected 6: question, A, B, C, D, answer; got 7)",
        ),
        Case(
            "one column",
            b'"only a question?"',
            "wrong number of columns (expected 6: question, A, B, C, D, answer; got 1)",
        ),
        Case(
            "a thousand columns",
            row("Wide?", *["x"] * 999),
            "wrong number of columns (expected 6: question, A, B, C, D, answer; got 1000)",
        ),
        Case(
            "invalid UTF-8", row("Bad \xff byte?").replace("\xff".encode(), b"\xff"), "row is not valid UTF-8"
        ),
        Case("latin-1", row("caf\u00e9?").replace("\u00e9".encode(), b"\xe9"), "row is not valid UTF-8"),
        Case("overlong UTF-8", row("slash?").replace(b"slash", b"\xc0\xaf"), "row is not valid UTF-8"),
        Case(
            "NUL byte",
            row("NUL in here?").replace(b"in here", b"in\x00here"),
            "text contains a NUL character",
        ),
        Case("huge row", row("x" * 100_000), "row is larger than the record limit (100,"),
        Case(
            "huge question",
            row("y" * 2000),
            "question is longer than the field limit (2,000 characters > 1,000",
        ),
        Case(
            "huge option",
            row("Big option?", "z" * 2000, "b", "c", "d", "B"),
            "option A is longer than the field limit",
        ),
        Case(
            "answer not an option",
            row("Answer E?", "a", "b", "c", "d", "E"),
            "answer 'E' is not among the options (A, B, C, D)",
        ),
        Case("answer empty", row("No answer?", "a", "b", "c", "d", ""), "no answer"),
        Case(
            "answer an index",
            row("Index?", "a", "b", "c", "d", "1"),
            "answer '1' is not among the options (A, B, C, D; pass an answer index base",
        ),
        Case(
            "answer a fraction",
            row("Fraction?", "a", "b", "c", "d", "1.5"),
            "answer '1.5' is not among the options",
        ),
        Case(
            "answer two labels",
            row("Two labels?", "a", "b", "c", "d", "AB"),
            "answer 'AB' is not among the options",
        ),
        Case("empty option", row("Empty option?", "a", "b", "", "d", "B"), "option C has empty text"),
        Case("empty question", row("", "a", "b", "c", "d", "B"), "empty question text"),
        Case("blank question", row("   ", "a", "b", "c", "d", "B"), "empty question text"),
        Case("stray quote", b'"Stray "quote" here?",a,b,c,d,B', STORED, "anatomy-dev-{n}"),
        Case("BOM mid-file", b"\xef\xbb\xbf" + row("After a BOM?"), STORED, "anatomy-dev-{n}"),
        Case("CRLF", row("CRLF?") + b"\r", STORED, "anatomy-dev-{n}"),
        Case("answer in lower case", row("Lower?", "a", "b", "c", "d", "b"), STORED, "anatomy-dev-{n}"),
        Case(
            "answer as option text",
            row("By text?", "a", "b", "gamma", "d", "gamma"),
            STORED,
            "anatomy-dev-{n}",
        ),
        Case(
            "multi-line quoted question", b'"First line\nsecond line?",a,b,c,d,A', STORED, "anatomy-dev-{n}"
        ),
        Case("superscripts kept", row("Platelets 150\u00d710\u2079/L?"), STORED, "anatomy-dev-{n}"),
        Case("only commas", b",,,,,", SKIPPED),
        # csv reads an open quote at end of file as a field running to the end: one cell
        Case(
            "unterminated quote at the end",
            b'"Cut short,a,b',
            "wrong number of columns (expected 6: question, A, B, C, D, answer; got 1)",
            last=True,
        ),
    ]


def plant_rows(
    good: Callable[[int], bytes], cases: list[Case], id_of: Callable[[int], str] = "anatomy-dev-{}".format
) -> Planted:
    lines = [good(0)]
    goods = [1]
    expect = []
    for c in [c for c in cases if not c.last]:
        lines.append(c.data)
        n = len(lines)
        stored = c.stored_id.format(n=n) if c.stored_id else None
        expect.append((Case(c.name, c.data, c.reason, stored), f"row {n}"))
        lines.append(good(len(lines)))
        goods.append(len(lines))
    data = b"\n".join(lines) + b"\n"
    for c in cases:
        if c.last:
            data += c.data
            expect.append((c, f"row {len(lines) + 1}"))
    return Planted(data, expect, [id_of(n) for n in goods])


def test_mmlu_loader_table(tmp_path: Path, engine: Engine) -> None:
    table = mmlu_cases()
    planted = plant_rows(mmlu_row, table)
    run_table(engine, tmp_path, "mmlu", planted, "anatomy_dev.csv")
    with Session(engine) as ses:
        kept = ses.scalars(select(QRow.question).where(QRow.question.like("Platelets%"))).one()
    assert "10\u2079/L" in kept  # the superscript is text, not a digit


# --------------------------------------------------------------------------- text fidelity


def _legacy_hash(q: dict[str, Any]) -> str:
    """The dedup hash as computed before revision 0006, over text stored as NFKC with collapsed spaces."""
    import hashlib

    from reasonmed.models import normalise_text

    payload = {
        "q": normalise_text(q["question"]).casefold(),
        "c": normalise_text(q["context"]).casefold() if q.get("context") else None,
        "o": [[k, normalise_text(t).casefold()] for k, t in q["options"].items()],
        "a": q["answer"],
    }
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize(
    "text",
    [
        "Platelets 150\u00d710\u2079/L: which is low?",
        "Dose 75 mg/m\u00b2 of cisplatin?",
        "Serum Ca\u00b2\u207a and Mg\u00b2\u207a are both low?",
        "Ligature \ufb01brosis and full-width \uff21?",
        "Decomposed cafe\u0301 au lait\u00a0spots,\n  in two   lines?",
        "\u2160 and \u2163 cranial nerves?",
    ],
)
def test_stored_text_is_kept_and_the_dedup_hash_is_unchanged(text: str) -> None:
    """Text is stored as given (NFC, trimmed); the hash still comes from the aggressive form, and equals
    the hash rows stored before 0006 carry (their text was the NFKC form), so they need no rehash."""
    import unicodedata

    from reasonmed.models import Question, normalise_text

    opts = {"A": "10\u2079/L", "B": "10\u00b3/\u00b5L"}
    q = Question(
        source="custom", source_id="t", question=f"  {text} ", options=opts, answer="A", context=text
    )
    assert q.question == unicodedata.normalize("NFC", text.strip())
    assert q.options == opts and q.context == unicodedata.normalize("NFC", text)
    legacy = {
        "question": normalise_text(text),
        "context": text,
        "answer": "A",
        "options": {k: normalise_text(v) for k, v in opts.items()},
    }
    assert q.content_hash == _legacy_hash(legacy)
    old_row = Question(
        source="custom",
        source_id="t",
        question=normalise_text(text),
        context=normalise_text(text),
        options={k: normalise_text(v) for k, v in opts.items()},
        answer="A",
    )
    assert old_row.content_hash == q.content_hash  # a re-ingest of old data deduplicates against old rows


# --------------------------------------------------------------------------- bounded memory


@pytest.mark.parametrize("fmt", ["medqa", "pubmedqa", "mmlu"])
def test_a_huge_record_costs_bounded_memory(fmt: str, tmp_path: Path) -> None:
    """A 40 MB record with the default limits: rejected with its size, read in chunks (peak far below
    its size), and the records after it are read."""
    import tracemalloc

    from reasonmed.ingest.loaders import load

    huge = "z" * (40 << 20)
    path = tmp_path / {"medqa": "h.jsonl", "pubmedqa": "h.json", "mmlu": "h_dev.csv"}[fmt]
    if fmt == "medqa":
        path.write_bytes(
            j(medqa_good(0)) + b"\n" + j({**medqa_good(1), "question": huge}) + b"\n" + j(medqa_good(2))
        )
    elif fmt == "pubmedqa":
        path.write_bytes(
            b"{"
            + pubmedqa_good(0)
            + b',\n"h": {"QUESTION": "'
            + huge.encode()
            + b'"},\n'
            + pubmedqa_good(2)
            + b"}"
        )
    else:
        path.write_bytes(mmlu_row(0) + b"\n" + huge.encode() + b",a,b,c,d,A\n" + mmlu_row(2) + b"\n")
    del huge
    tracemalloc.start()
    try:
        out = list(load(path, fmt))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r.question is not None for r in out] == [True, False, True]
    assert "larger than the record limit" in (out[1].error or "")
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB while reading a 40 MiB record"


# --------------------------------------------------------------------------- files end done or failed


def test_a_row_the_database_refuses_costs_only_itself(tmp_path: Path, pg_engine: Engine) -> None:
    """The database itself refuses one row (a trigger): the batch is written again row by row, the row
    becomes an error with the database's reason, every other row is stored."""
    from sqlalchemy import text

    with pg_engine.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.source_id = 'poison' THEN RAISE EXCEPTION 'poisoned row'; END IF; RETURN NEW; END $$"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON questions FOR EACH ROW "
                "EXECUTE FUNCTION refuse_poison()"
            )
        )
    recs = [medqa_good(i) for i in range(5)]
    recs[2] = {**recs[2], "id": "poison"}
    path = tmp_path / "poison.jsonl"
    path.write_bytes(b"\n".join(j(r) for r in recs))
    s = ingest_file(pg_engine, path, "medqa")
    with Session(pg_engine) as ses:
        assert set(ses.scalars(select(QRow.source_id))) == {"g0", "g1", "g3", "g4"}
        errs = [(e.record_ref, e.reason) for e in ses.scalars(select(IngestError))]
        f = ses.scalars(select(IngestFile)).one()
    assert len(errs) == 1 and errs[0][0] == "line 3"
    assert errs[0][1].startswith("the database refused this record (") and "poisoned row" in errs[0][1]
    assert (s.status, s.inserted, s.rejected) == ("done", 4, 1)
    assert (f.status, f.n_inserted, f.n_rejected) == ("done", 4, 1)


def test_a_failure_mid_file_ends_it_failed_with_the_reason_and_a_rerun_finishes_it(
    tmp_path: Path, engine: Engine
) -> None:
    path = tmp_path / "stops.jsonl"
    path.write_bytes(b"\n".join(j(medqa_good(i)) for i in range(10)))

    calls = []

    def explode(done: int, total: int | None) -> None:
        calls.append(done)
        if done >= 4 and len(calls) == 2:
            raise OSError("disk went away")

    s = ingest_file(engine, path, "medqa", batch_size=2, progress=explode)
    assert s.status == "failed" and "OSError: disk went away" in (s.error or "")
    with Session(engine) as ses:
        f = ses.scalars(select(IngestFile)).one()
        stored = ses.scalars(select(QRow.source_id)).all()
    assert f.status == "failed" and f.error == s.error and "stopped after" in f.error
    assert 4 <= len(stored) < 10  # the records read before the failure are kept
    again = ingest_file(engine, path, "medqa", batch_size=2)
    assert (again.status, again.read, again.inserted + again.duplicates) == ("done", 10, 10)
    with Session(engine) as ses:
        f = ses.scalars(select(IngestFile)).one()
        assert (f.status, f.error) == ("done", None) and len(ses.scalars(select(QRow.id)).all()) == 10


def test_a_file_with_no_valid_record_fails_the_command_and_names_the_source_that_reads_it(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from reasonmed.cli import app
    from reasonmed.config import temporary_settings

    with temporary_settings(database_url=sqlite_url):
        path = tmp_path / "really_medmcqa.jsonl"
        path.write_bytes(b"\n".join(j(medmcqa_good(i)) for i in range(3)))
        r = CliRunner().invoke(app, ["ingest", str(path), "--source", "medqa", "--database-url", sqlite_url])
    assert r.exit_code == 1, r.output
    out = " ".join(r.output.split())
    assert "all 3 records were rejected as --format medqa" in out and "medmcqa" in out


# --------------------------------------------------------------------------- ingest semantics


def test_same_id_with_other_content_is_counted_and_reported(tmp_path: Path, engine: Engine) -> None:
    a = tmp_path / "a.jsonl"
    a.write_bytes(
        b"\n".join(
            [
                j(medqa_good(1)),
                j({**medqa_good(1), "question": "Same id, other text?"}),
                j(medqa_good(2)),
                j(medqa_good(2)),
            ]
        )
    )  # an exact repeat is a duplicate, not a clash
    s = ingest_file(engine, a, "medqa")
    assert (s.inserted, s.duplicates, s.id_conflicts) == (3, 1, 1)
    assert any(
        "1 record(s) reuse an id held by a question with other content (e.g. 'g1')" in w for w in s.warnings
    )
    b = tmp_path / "b.jsonl"
    b.write_bytes(
        j({**medqa_good(2), "answer_idx": "C", "answer": "gamma"})
    )  # another file, same id, other answer
    s2 = ingest_file(engine, b, "medqa")
    assert (s2.inserted, s2.id_conflicts) == (1, 1)
    with Session(engine) as ses:
        assert sorted(ses.scalars(select(IngestFile.n_id_conflicts))) == [1, 1]


# --------------------------------------------------------------------------- Parquet (typed columns)


def _parquet_table(
    engine: Engine,
    tmp_path: Path,
    name: str,
    good: dict[str, Any],
    cases: list[tuple[str, dict[str, Any], str | None]],
    schema: Any,
    **kw: Any,
) -> None:
    """Rows good, case, good, case, ...; a case's outcome is an error reason prefix, or None (stored)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, expect, goods = [], [], []
    for k, (label, row, reason) in enumerate(cases):
        rows.append({**good, "id": f"g{k}", "question": f"Good parquet question {k}?"})
        goods.append(f"g{k}")
        rows.append({**good, "id": f"c{k}", "question": f"Parquet case {k}?", **row})
        stored = (
            (row.get("id", f"c{k}") or f"row-{2 * k + 2}") if reason is None else None
        )  # no id: its position
        expect.append((Case(label, b"", reason, stored), f"row {2 * k + 2}"))
    rows.append({**good, "id": "last", "question": "Last good parquet question?"})
    goods.append("last")
    path = tmp_path / name
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=7)  # cases span row groups
    s = ingest_file(engine, path, "parquet", limits=LIMITS, **kw)
    with Session(engine) as ses:
        ids = set(ses.scalars(select(QRow.source_id)))
        errs = {
            e.record_ref: e.reason
            for e in ses.scalars(select(IngestError).join(IngestFile).where(IngestFile.path == str(path)))
        }
    assert set(goods) <= ids
    problems = []
    for case, ref in expect:
        if case.reason is None:
            if case.stored_id not in ids:
                problems.append(f"{case.name}: expected stored, got {errs.get(ref)!r}")
        elif not (errs.get(ref) or "").startswith(case.reason):
            problems.append(f"{case.name} ({ref}): expected {case.reason!r}, got {errs.get(ref)!r}")
    assert not problems, "\n".join(problems)
    assert s.rejected == len([c for c, _ in expect if c.reason is not None]) == len(errs)


def test_parquet_loader_table(tmp_path: Path, engine: Engine) -> None:
    import pyarrow as pa

    text_schema = pa.schema(
        [
            ("id", pa.string()),
            ("question", pa.string()),
            ("context", pa.string()),
            ("options", pa.string()),
            ("answer", pa.string()),
        ]
    )
    good = {"context": None, "options": '["alpha", "beta", "gamma"]', "answer": "B"}
    text_cases: list[tuple[str, dict[str, Any], str | None]] = [
        ("question null", {"question": None}, "empty question text"),
        ("question blank", {"question": "  \u3000 "}, "empty question text"),
        ("question huge", {"question": "q" * 2000}, "question is longer than the field limit (2,000"),
        ("question with NUL", {"question": "N\u0000UL?"}, "text contains a NUL character"),
        ("id too long", {"id": "i" * 300}, "id is longer than 200 characters"),
        ("id null", {"id": None}, None),
        ("options JSON broken", {"options": '["a", "b"'}, "options cell is not valid JSON"),
        ("options JSON with NaN", {"options": "[NaN, 2]"}, "option A is nan (NaN or Infinity), not text"),
        (
            "options JSON with Infinity",
            {"options": '["a", Infinity]'},
            "option B is inf (NaN or Infinity), not text",
        ),
        ("options JSON holding an object", {"options": '["a", {"b": 1}]'}, "option B is an object, not text"),
        ("options JSON holding a boolean", {"options": '["a", true]'}, "option B is a boolean, not text"),
        ("one option", {"options": '["only"]', "answer": "A"}, "fewer than 2 options (1)"),
        ("options null", {"options": None}, "fewer than 2 options (0)"),
        ("options a bare word", {"options": "alpha"}, "options cell holds a string, not an object or a list"),
        (
            "option huge",
            {"options": json.dumps(["o" * 2000, "b"])},
            "option A is longer than the field limit",
        ),
        ("option empty", {"options": '["a", ""]'}, "option B has empty text"),
        ("answer null", {"answer": None}, "no answer"),
        ("answer not an option", {"answer": "Z"}, "answer 'Z' is not among the options (A, B, C)"),
        ("answer fractional text", {"answer": "1.5"}, "answer '1.5' is not among the options"),
        ("context huge", {"context": "c" * 2000}, "context is longer than the field limit"),
        ("context with NUL", {"context": "ctx \u0000"}, "text contains a NUL character"),
        ("options as an object", {"options": '{"X": "x", "Y": "y"}', "answer": "Y"}, None),
        ("superscripts", {"question": "Ca\u00b2\u207a of 2.1 mmol/L?"}, None),
    ]
    _parquet_table(engine, tmp_path, "text.parquet", good, text_cases, text_schema)

    num_schema = pa.schema(
        [
            ("id", pa.string()),
            ("question", pa.string()),
            ("options", pa.list_(pa.float64())),
            ("answer", pa.float64()),
        ]
    )
    num_good = {"options": [1.5, 2.5, 3.5], "answer": 1.0}
    num_cases: list[tuple[str, dict[str, Any], str | None]] = [
        ("NaN option", {"options": [1.0, float("nan")]}, "option B is nan (NaN or Infinity), not text"),
        ("Infinity option", {"options": [float("inf"), 2.0]}, "option A is inf (NaN or Infinity), not text"),
        (
            "-Infinity option",
            {"options": [1.0, float("-inf")]},
            "option B is -inf (NaN or Infinity), not text",
        ),
        ("null option", {"options": [1.0, None]}, "option B has empty text"),
        (
            "fractional answer index",
            {"answer": 1.5},
            "answer 1.5 is not a whole number, so it names no option",
        ),
        ("answer index out of range", {"answer": 7.0}, "answer index out of range (got 7, expected 0-2)"),
        ("NaN answer", {"answer": float("nan")}, "answer nan is not a whole number, so it names no option"),
        ("integral float answer", {"answer": 2.0}, None),
    ]
    _parquet_table(engine, tmp_path, "numbers.parquet", num_good, num_cases, num_schema, answer_index_base=0)
    assert len(text_cases) + len(num_cases) - 4 >= 25  # malformed ones, besides the stored edge cases


def test_a_parquet_file_cut_short_is_refused_before_anything_is_written(
    tmp_path: Path, engine: Engine
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from reasonmed.ingest.loaders import FileFormatError

    path = tmp_path / "cut.parquet"
    pq.write_table(pa.Table.from_pylist([generic_good(i) for i in range(50)]), path)
    path.write_bytes(path.read_bytes()[:-40])  # the footer is gone
    with pytest.raises(FileFormatError, match="not a Parquet file"):
        ingest_file(engine, path, "parquet")
    with Session(engine) as ses:
        assert ses.scalars(select(IngestFile)).all() == []  # never left 'running': nothing was started


# --------------------------------------------------------------------------- CSV (generic, with a header)

CSV_HEADER = b"id,question,context,A,B,C,answer"
CSV_MAP = {"option:A": "A", "option:B": "B", "option:C": "C"}


def csv_row(i: int) -> bytes:
    return f'r{i + 1},"Good CSV question number {i}?",,alpha,beta,gamma,B'.encode()


def csv_cases() -> list[Case]:
    def row(id_: str, q: str, *cells: str) -> bytes:
        cells = cells or ("", "alpha", "beta", "gamma", "B")
        return ",".join([id_, f'"{q}"', *cells]).encode()

    def opts(
        answer: str, a: str = "alpha", b: str = "beta", c: str = "gamma", ctx: str = ""
    ) -> tuple[str, ...]:
        return (ctx, a, b, c, answer)

    return [
        Case(
            "too few cells",
            row("x1", "Few?", "", "a", "b", "c"),
            "wrong number of cells (header has 7, row has 6)",
        ),
        Case(
            "too many cells",
            row("x2", "Many?", "", "a", "b", "c", "B", "extra"),
            "wrong number of cells (header has 7, row has 8)",
        ),
        Case(
            "a thousand cells",
            row("x3", "Wide?", *["x"] * 998),
            "wrong number of cells (header has 7, row has 1000)",
        ),
        Case(
            "invalid UTF-8",
            row("u1", "Bad PLACEHOLDER byte?").replace(b"PLACEHOLDER", b"\xff"),
            "row is not valid UTF-8",
        ),
        Case(
            "latin-1",
            row("u2", "caf PLACEHOLDER?").replace(b"PLACEHOLDER", b"\xe9"),
            "row is not valid UTF-8",
        ),
        Case(
            "overlong UTF-8",
            row("u3", "slash PLACEHOLDER?").replace(b"PLACEHOLDER", b"\xc0\xaf"),
            "row is not valid UTF-8",
        ),
        Case(
            "NUL byte in the question",
            row("n1", "NUL PLACEHOLDER here?").replace(b"PLACEHOLDER", b"\x00"),
            "text contains a NUL character",
        ),
        Case(
            "NUL byte in the context",
            row("n2", "Context NUL?", *opts("B", ctx="c\x00d")),
            "text contains a NUL character",
        ),
        Case("huge row", row("h1", "x" * 100_000), "row is larger than the record limit (100,"),
        Case(
            "huge question",
            row("h2", "y" * 2000),
            "question is longer than the field limit (2,000 characters > 1,000",
        ),
        Case(
            "huge context",
            row("h3", "Big context?", *opts("B", ctx="c" * 2000)),
            "context is longer than the field limit",
        ),
        Case(
            "huge option",
            row("h4", "Big option?", *opts("B", a="o" * 2000)),
            "option A is longer than the field limit",
        ),
        Case("answer empty", row("a1", "No answer?", *opts("")), "no answer"),
        Case(
            "answer not an option",
            row("a2", "Answer Z?", *opts("Z")),
            "answer 'Z' is not among the options (A, B, C)",
        ),
        Case(
            "answer an index without a base",
            row("a3", "Index?", *opts("2")),
            "answer '2' is not among the options (A, B, C; pass an answer index base",
        ),
        Case(
            "answer a fraction", row("a4", "Fraction?", *opts("1.5")), "answer '1.5' is not among the options"
        ),
        Case("answer two labels", row("a5", "Two?", *opts("AB")), "answer 'AB' is not among the options"),
        Case("empty option", row("o1", "Empty option?", *opts("B", c="")), "option C has empty text"),
        Case("blank option", row("o2", "Blank option?", *opts("A", b="   ")), "option B has empty text"),
        Case("empty question", row("q1", ""), "empty question text"),
        Case("blank question", row("q2", "   "), "empty question text"),
        Case("id too long", row("i" * 300, "Long id?"), "id is longer than 200 characters"),
        Case("id empty", row("", "No id?"), STORED, "row-{n}"),
        Case("stray quote", b'x4,"Stray "quote" here?",,a,b,c,B', STORED, "x4"),
        Case("BOM mid-file", b"\xef\xbb\xbf" + row("x5", "After a BOM?"), STORED, "x5"),
        Case("CRLF", row("x6", "CRLF?") + b"\r", STORED, "x6"),
        Case("multi-line quoted question", b'x7,"First line\nsecond line?",,a,b,c,A', STORED, "x7"),
        Case("answer as option text", row("x8", "By text?", *opts("gamma")), STORED, "x8"),
        Case("answer in lower case", row("x9", "Lower?", *opts("b")), STORED, "x9"),
        Case("answer with spaces", row("x10", "Spaces?", *opts(" C ")), STORED, "x10"),
        Case("only commas", b",,,,,,", SKIPPED),
        Case(
            "unterminated quote at the end",
            b'x11,"Cut short,a,b',
            "wrong number of cells (header has 7, row has 2)",
            last=True,
        ),
    ]


def test_generic_csv_loader_table(tmp_path: Path, engine: Engine) -> None:
    table = csv_cases()
    assert len([c for c in table if c.reason is not STORED and c.reason != SKIPPED]) >= 23
    planted = plant_rows(csv_row, table, id_of="r{}".format)
    planted.data = CSV_HEADER + b"\n" + planted.data
    run_table(engine, tmp_path, "csv", planted, "hostile.csv", mapping=CSV_MAP)


def test_the_limits_are_settings_the_command_uses(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from reasonmed.cli import app
    from reasonmed.config import get_settings, temporary_settings
    from reasonmed.db.engine import make_engine

    with temporary_settings(ingest_max_field_chars=150, ingest_max_record_bytes=2048, ingest_max_depth=4):
        assert get_settings().ingest_limits == Limits(2048, 150, 4)
        path = tmp_path / "limits.jsonl"
        path.write_bytes(
            b"\n".join(
                [
                    j(medqa_good(1)),
                    j({**medqa_good(2), "question": "w" * 200}),
                    j({**medqa_good(3), "x": "z" * 3000}),
                    j({**medqa_good(4), "x": nest(5)}),
                    j(medqa_good(5)),
                ]
            )
        )
        r = CliRunner().invoke(app, ["ingest", str(path), "--source", "medqa", "--database-url", sqlite_url])
    assert r.exit_code == 0, r.output
    engine = make_engine(sqlite_url)
    with Session(engine) as ses:
        errs = {e.record_ref: e.reason for e in ses.scalars(select(IngestError))}
        assert set(ses.scalars(select(QRow.source_id))) == {"g1", "g5"}
    engine.dispose()
    assert errs["line 2"].startswith("question is longer than the field limit (200 characters > 150")
    assert errs["line 3"].startswith("line is larger than the record limit (3,")
    assert errs["line 4"] == "line is JSON nested too deeply (limit 4 levels)"
