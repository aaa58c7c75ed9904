"""``${VAR}`` and ``${VAR:-default}`` in a pipeline file, expanded in each string value once the file is
parsed. An environment value is data, never YAML: a newline in it stays inside its value (it cannot add
keys), and a reference in a comment or a key is never looked at."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Lookup = Callable[[str], str | None]


class UnsetVariable(ValueError):
    """A reference without a default to a variable that is not set; the message names the key."""


def is_reference(value: str) -> bool:
    """Whether ``value`` is one reference and nothing else (``${HF_TOKEN}``): it names where a value
    comes from and holds none."""
    return ENV_REF.fullmatch(value.strip()) is not None


def has_reference(value: Any) -> bool:
    return isinstance(value, str) and ENV_REF.search(value) is not None


def expand(data: Any, lookup: Lookup, key: str = "") -> Any:
    """A copy of ``data`` (parsed YAML) with every reference in every string value replaced by the value
    ``lookup`` gives (or the default); mapping keys stay as written."""
    if isinstance(data, dict):
        return {k: expand(v, lookup, f"{key}.{k}" if key else str(k)) for k, v in data.items()}
    if isinstance(data, list):
        return [expand(v, lookup, f"{key}[{i}]") for i, v in enumerate(data)]
    if not isinstance(data, str):
        return data

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        value = lookup(name)
        if value is not None:
            return value
        if default is None:
            where = f"{key}: " if key else ""
            raise UnsetVariable(f"{where}environment variable {name} is not set (referenced as ${{{name}}})")
        return default

    return ENV_REF.sub(sub, data)
