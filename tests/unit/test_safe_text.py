"""``safe_text``: text from a database or a model prints as itself, never as Rich markup, and reaches the
terminal without the control sequences a terminal would act on. Table-driven: each case is printed
through a Rich console with markup on, alone and inside a table cell, as the CLI prints it."""

from __future__ import annotations

import ast
import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from rich.errors import MarkupError
from rich.table import Table
from rich.text import Text

from reasonmed.cli.safe_text import safe_json, safe_text

REPO = Path(__file__).resolve().parents[2]

# (name, text as stored, what the terminal gets)
CASES = [
    ("closing INST tag", "ends with [/INST] here", "ends with [/INST] here"),
    ("closing bold tag", "[/bold] stray", "[/bold] stray"),
    ("opening style tag", "[bold red]x", "[bold red]x"),
    ("lone bracket", "a [ b", "a [ b"),
    ("escaped-looking bracket", "\\[not markup]", "\\[not markup]"),
    ("CSI colour", "\x1b[31mred\x1b[0m text", "red text"),
    ("CSI erase screen", "\x1b[2J\x1b[Hcleared", "cleared"),
    ("OSC title ended by BEL", "\x1b]0;title\x07after", "after"),
    ("OSC hyperlink ended by ST", "\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),
    ("lone ESC", "end\x1b", "end"),
    ("ESC c resets the terminal", "a\x1bcb", "ab"),
    ("charset switch", "\x1b(0lqk", "lqk"),
    ("BEL", "ring\x07", "ring"),
    ("backspace", "abc\x08\x08\x08xyz", "abcxyz"),
    ("carriage return overwrite", "safe\rEVIL", "safeEVIL"),
    ("CRLF keeps the newline", "one\r\ntwo", "one\ntwo"),
    ("NUL and DEL", "a\x00b\x7fc", "abc"),
    ("C1 CSI alone", "x\x9b", "x"),
    ("C1 CSI sequence", "\x9b31mred", "red"),
    ("C1 NEL", "a\x85b", "ab"),
    ("right-to-left override", "file\u202egnp.exe", "filegnp.exe"),
    ("bidi isolates", "\u2066abc\u2069 \u2067d\u2068e", "abc de"),
    ("bidi embeddings", "\u202aa\u202bb\u202cc\u202dd", "abcd"),
    (
        "medical text",
        "β-blocker 5 µg/kg, Na⁺ ≥ 135 mmol/L — 患者",
        "β-blocker 5 µg/kg, Na⁺ ≥ 135 mmol/L — 患者",
    ),
    ("markdown references", "see [1] and [a](b), list[int]", "see [1] and [a](b), list[int]"),
    ("newline and tab", "line one\n\tline two", "line one\n\tline two"),
    ("emoji code stays text", ":pill: 2x daily", ":pill: 2x daily"),
]
IDS = [c[0] for c in CASES]
ONE_LINE = [c for c in CASES if not any(ws in c[2] for ws in "\n\t")]
FORBIDDEN = [chr(c) for c in (*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))] + [
    chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))
]


def _printed(renderable: object, *, styled: bool = False) -> str:
    """What a console like the CLI's (markup and emoji codes on) writes; ``styled``: as to a terminal."""
    buf = io.StringIO()
    console = Console(file=buf, width=200, force_terminal=styled, color_system="truecolor", highlight=False)
    console.print(renderable)
    return buf.getvalue()


@pytest.mark.parametrize(("name", "text", "shown"), CASES, ids=IDS)
def test_printed_as_data(name: str, text: str, shown: str) -> None:
    assert safe_text(text).plain == shown
    assert _printed(safe_text(text)) == shown.expandtabs(8) + "\n"


@pytest.mark.parametrize(("name", "text", "shown"), ONE_LINE, ids=[c[0] for c in ONE_LINE])
def test_printed_in_a_table_cell(name: str, text: str, shown: str) -> None:
    table = Table("column", title=safe_text(text), box=None, show_header=False)
    table.add_row(safe_text(text))
    out = _printed(table)
    assert out.count(shown) == 2, repr(out)  # the title and the cell
    assert not any(c in out for c in FORBIDDEN), repr(out)


@pytest.mark.parametrize(("name", "text", "shown"), CASES, ids=IDS)
def test_nothing_a_terminal_acts_on_is_left(name: str, text: str, shown: str) -> None:
    assert not any(c in safe_text(text).plain for c in FORBIDDEN)


def test_style_is_applied_to_the_text_not_read_from_it() -> None:
    out = _printed(safe_text("[green]ok[/green]", style="bold"), styled=True)
    assert "[green]ok[/green]" in out and "\x1b[1m" in out


def test_any_value_is_printed_as_its_str() -> None:
    assert safe_text(3).plain == "3" and safe_text(None).plain == "None"
    assert safe_text(ValueError("[/INST]\x1b[31m")).plain == "[/INST]"


def test_the_same_text_as_markup_would_break_or_leak() -> None:
    """Why the function exists: a plain str is parsed as markup and its escapes reach the terminal."""
    with pytest.raises(MarkupError):
        _printed("verifier said [/INST]")
    assert _printed(Text("\x1b[31mred")) == "\x1b[31mred\n"  # Rich's own Text keeps ESC


@pytest.mark.parametrize(("name", "text", "shown"), CASES, ids=IDS)
def test_json_keeps_the_value_and_escapes_the_controls(name: str, text: str, shown: str) -> None:
    data = {"reason": text, "options": [["A", text]], "n": 1}
    dumped = safe_json(json.dumps(data, indent=2, ensure_ascii=False))
    assert json.loads(dumped) == data  # the same value, nothing dropped
    assert not any(c in dumped for c in FORBIDDEN), repr(dumped)
    assert "β-blocker 5 µg/kg" in safe_json(json.dumps("β-blocker 5 µg/kg", ensure_ascii=False))


# --------------------------------------------------------------------------- the CLI keeps to it


def _fstring_prints(source: str) -> list[int]:
    """Lines where ``….print(f"...{value}...")`` hands Rich an interpolated str (read as markup)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "print"
            and node.args
            and isinstance(node.args[0], ast.JoinedStr)
            and any(isinstance(v, ast.FormattedValue) for v in node.args[0].values)
        ):
            lines.append(node.lineno)
    return lines


def test_the_guard_sees_an_interpolated_print() -> None:
    assert _fstring_prints('console.print(f"reason: {reason}")\n') == [1]
    assert _fstring_prints('console.print(safe_text(f"reason: {reason}"))\nconsole.print("done")\n') == []


def test_cli_prints_no_interpolated_str() -> None:
    """Every line the CLI prints with a value in it goes through ``safe_text``: a value is data."""
    found = [
        f"{path.relative_to(REPO)}:{line}"
        for path in sorted((REPO / "reasonmed" / "cli").glob("*.py"))
        for line in _fstring_prints(path.read_text())
    ]
    assert found == []
