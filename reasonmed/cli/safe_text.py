"""Text from a database, a file or a model, made safe to print on a terminal.

Such text is data: a ``[/INST]`` in a verifier's reason must print as itself, not be read as Rich markup
(an unmatched closing tag ends the command with a MarkupError), and an escape sequence in a model's reply
must not recolour, retitle or rewrite the user's terminal. Bidi overrides and isolates go too: they can
make a line read differently from what it holds. Only what is printed changes; what is stored or exported
stays as it was.
"""

from __future__ import annotations

import re

from rich.text import Text

# The characters a terminal acts on rather than shows: C0 but tab and newline, DEL, C1, bidi controls.
_CONTROL = "[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"
# Escape sequences go whole (so no stray "31m" is left behind), then any control character left.
_UNSAFE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, erasing (7-bit and C1 forms)
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"  # OSC up to BEL or ST: window title, hyperlinks
    r"|\x1b[ -/]*[0-~]"  # every other escape sequence (charset switches, keypad modes, reset)
    "|" + _CONTROL  # a lone ESC among them
)
_JSON_CONTROL = re.compile(_CONTROL)


def safe_text(value: object, style: str = "") -> Text:
    """``value`` as Rich text that is never parsed as markup, with terminal control sequences removed.

    A ``Text`` prints as it reads wherever Rich takes a renderable (``console.print``, table cells and
    titles, ``Group``); ``.plain`` gives the cleaned string where a plain one is needed.
    """
    return Text(_UNSAFE.sub("", str(value)), style=style)


def safe_json(dumped: str) -> str:
    """JSON text (``json.dumps(..., ensure_ascii=False)``) with every control character ``\\u``-escaped.

    ``json.dumps`` escapes C0 only; C1 and bidi controls would reach the terminal raw. Outside strings JSON
    holds none of them, so the escaped text is the same JSON value: nothing is removed from the data.
    """
    return _JSON_CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", dumped)
