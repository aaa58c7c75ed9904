"""YAML from a user-supplied file, loaded so that a small file cannot cost much.

No anchors or aliases: the node graph stays small, but a 1 KB alias bomb (each level a list of aliases
of the level below) becomes billions of objects once built and validated. Nesting at most ``MAX_DEPTH``
levels: PyYAML's composer recurses once per level, so 200,000 ``[`` ended in a RecursionError. Only what
``SafeLoader`` builds (no Python objects). Every refusal is one line naming the line of the file.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_DEPTH = 64


class YamlRefused(ValueError):
    """The text is not YAML this loader accepts; the message is one line."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases and counts how deep it composes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        _check_node(self.peek_event(), self._depth)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _check_node(event: yaml.Event, depth: int) -> None:
    """The two refusals, for a node's event with ``depth`` collections around it: an anchor or alias, and
    nesting past MAX_DEPTH. The one rule for the loader and for the screen."""
    line = event.start_mark.line + 1 if event.start_mark else 0
    if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
        raise YamlRefused(
            f"line {line}: YAML anchors and aliases (&name, *name, <<: *name) are not accepted; "
            "write each value out"
        )
    if depth >= MAX_DEPTH:
        raise _too_deep(line)


def _too_deep(line: int) -> YamlRefused:
    return YamlRefused(f"line {line}: nested more than {MAX_DEPTH} levels deep")


def _screen(text: str) -> None:
    """The same refusals, read first with libyaml's C parser where PyYAML has it: the Python scanner takes
    time quadratic in a run of open brackets (0.17 s for the 1,000 it looks ahead over, however long the
    file), the C one milliseconds. Text the C parser rejects is left to the loader, whose error is reported."""
    if not yaml.__with_libyaml__:
        return
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.CSafeLoader):
            if isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            elif isinstance(event, yaml.NodeEvent):
                _check_node(event, depth)
                depth += isinstance(event, yaml.CollectionStartEvent)
    except yaml.MarkedYAMLError as exc:
        # libyaml stops at its own limit (1,000 levels), past ours; any other error is the loader's to report.
        if "maximum nesting depth" in (exc.problem or "") and exc.problem_mark is not None:
            raise _too_deep(exc.problem_mark.line + 1) from None
    except yaml.YAMLError:
        return


def load(text: str) -> Any:
    """The one document in ``text``, as SafeLoader builds it, or YamlRefused."""
    _screen(text)
    return _compose(text)


def _compose(text: str) -> Any:
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise YamlRefused(f"not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:  # a backstop: MAX_DEPTH stops the composer long before
        raise YamlRefused(f"nested more than {MAX_DEPTH} levels deep") from None
    finally:
        loader.dispose()
