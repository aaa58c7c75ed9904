"""The column-wise JSON Lines encoder against its reference, ``json_dumps`` of each row, byte for byte.

The encoder escapes a whole column's UTF-8 bytes at once and recomputes the offsets, so the cases aim at
what that can get wrong: escapes at the first and last byte of a value, adjacent escapes, empty values,
multi-byte characters next to escapes, rare controls (the per-value path), nulls, sliced arrays.
"""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from reasonmed.export.writers import json_dumps, json_lines

CASES: list[tuple[str, list[str | None]]] = [
    ("plain", ["abc", "de", "f"]),
    ("empty values", ["", "a", "", "", "b", ""]),
    ("escape first and last", ['"a"', "\nb\n", "\\c\\", "\t"]),
    ("adjacent escapes", ['\\"\n\r\t\\\\""', "\r\n\r\n"]),
    ("multi-byte next to escapes", ['ü"ü', "😀\n😀", "“q”\\—", "\u2028\t\u2029"]),
    ("rare controls", ["a\x00b", "\x1e", "\x1f\x01\x7f", "ok", "\b\f"]),
    ("nulls", [None, "a\nb", None, ""]),
    ("all null", [None, None]),
    ("single", ['say "yes"\\no']),
]


@pytest.mark.parametrize("values", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_string_column_matches_json_dumps(values: list[str | None]) -> None:
    table = pa.table({"a": pa.array(values, type=pa.string()), "n": list(range(len(values)))})
    expected = "".join(json_dumps(row) + "\n" for row in table.to_pylist())
    assert "".join(json_lines(table).to_pylist()) == expected


def test_large_string_column_matches_json_dumps() -> None:
    table = pa.table({"a": pa.array(['a"b', "c\nd", "ü", None], type=pa.large_string())})
    expected = "".join(json_dumps(row) + "\n" for row in table.to_pylist())
    assert "".join(json_lines(table).to_pylist()) == expected


@pytest.mark.parametrize("seed", range(20))
def test_random_text_in_slices_matches_json_dumps(seed: int) -> None:
    """Random texts over an alphabet of every escape class, encoded as offset slices of a larger array
    (as the writer receives them), with and without a rare control in the slice."""
    rng = random.Random(seed)
    alphabet = 'ab \\"\n\r\tü—😀' + ("\x01" if seed % 4 == 0 else "")
    values = ["".join(rng.choices(alphabet, k=rng.randint(0, 12))) for _ in range(60)]
    column = pa.array(values, type=pa.string())
    start, length = rng.randint(0, 20), rng.randint(0, 40)
    table = pa.table({"s": column, "t": column, "f": [rng.random() for _ in values]}).slice(start, length)
    expected = "".join(json_dumps(row) + "\n" for row in table.to_pylist())
    assert "".join(json_lines(table).to_pylist()) == expected


@pytest.mark.parametrize(
    "floats",
    [[1.0, 0.1 + 0.2, 1e-7, 2.5e300, -0.0], [None, 0.7], [float("nan"), 1.0], [float("inf"), None]],
    ids=["finite", "null", "nan", "inf"],
)
def test_float_column_matches_json_dumps(floats: list[float | None]) -> None:
    table = pa.table({"x": pa.array(floats, type=pa.float64())})
    expected = "".join(json_dumps(row) + "\n" for row in table.to_pylist())
    assert "".join(json_lines(table).to_pylist()) == expected
