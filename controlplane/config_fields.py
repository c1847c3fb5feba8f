"""Typed readers for configuration fields, each recording a located problem on failure.

`FieldReader` turns `config_source.Node` values into Python values of the type the
schema asks for (strings, positive integers, fractions, USD prices in nanos, lists,
mappings with known keys) and, instead of raising, records a `ConfigError` and
returns None, so the schema walk carries on and reports everything at once.
`Names` tracks declared names and reports duplicates.

Pure: must not import grpc, sqlalchemy or `faregate.v1`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from decimal import Decimal

from controlplane.config_source import ConfigError, Node, join_path
from faregate.pricing import MoneyError, usd_to_nanos

INT64_MAX = 2**63 - 1


def _describe(node: Node) -> str:
    """What a value is, for "must be X, not Y" messages."""
    value = node.value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, tuple):
        return "a list"
    return "a mapping"


class FieldReader:
    """Reads typed values out of nodes; every failure becomes one recorded problem."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    def error(self, line: int, path: str, message: str) -> None:
        self.errors.append(ConfigError(line, path, message))

    def sorted_errors(self) -> tuple[ConfigError, ...]:
        unique = dict.fromkeys(self.errors)  # a shared alias can repeat a problem
        return tuple(sorted(unique, key=lambda e: e.line))

    def _wrong_type(self, node: Node, path: str, expected: str) -> None:
        self.error(node.line, path, f"must be {expected}, not {_describe(node)}")

    def mapping(
        self,
        node: Node | None,
        path: str,
        required: Iterable[str],
        optional: Iterable[str] = (),
    ) -> Mapping[str, Node] | None:
        """A mapping with exactly these keys: unknown and missing keys are problems."""
        if node is None:
            return None
        if not isinstance(node.value, Mapping):
            self._wrong_type(node, path, "a mapping")
            return None
        required = tuple(required)
        allowed = set(required) | set(optional)
        for key in node.value:
            if key not in allowed:
                self.error(
                    node.key_lines.get(key, node.line),
                    join_path(path, key),
                    f"unknown key; expected one of {', '.join(sorted(allowed))}",
                )
        for key in required:
            if key not in node.value:
                self.error(node.line, join_path(path, key), "required")
        return {key: value for key, value in node.value.items() if key in allowed}

    def free_mapping(self, node: Node | None, path: str) -> Mapping[str, Node] | None:
        """A mapping whose keys the caller checks (e.g. capability -> score)."""
        if node is None:
            return None
        if not isinstance(node.value, Mapping):
            self._wrong_type(node, path, "a mapping")
            return None
        return node.value

    def sequence(self, node: Node | None, path: str) -> tuple[Node, ...] | None:
        if node is None:
            return None
        if not isinstance(node.value, tuple):
            self._wrong_type(node, path, "a list")
            return None
        return node.value

    def string(self, node: Node | None, path: str, *, empty: bool = False) -> str | None:
        if node is None:
            return None
        if not isinstance(node.value, str):
            self._wrong_type(node, path, "a string")
            return None
        if not empty and not node.value.strip():
            self.error(node.line, path, "must not be empty")
            return None
        return node.value

    def string_list(self, node: Node | None, path: str) -> list[str] | None:
        items = self.sequence(node, path)
        if items is None:
            return None
        strings = [self.string(item, join_path(path, i)) for i, item in enumerate(items)]
        if any(s is None for s in strings):
            return None
        return [s for s in strings if s is not None]

    def choice(self, node: Node | None, path: str, options: Iterable[str]) -> str | None:
        value = self.string(node, path)
        allowed = tuple(str(option) for option in options)
        if value is None or node is None:
            return None
        if value not in allowed:
            self.error(node.line, path, f"{value!r} is not one of {', '.join(allowed)}")
            return None
        return value

    def boolean(self, node: Node | None, path: str) -> bool | None:
        if node is None:
            return None
        if not isinstance(node.value, bool):
            self._wrong_type(node, path, "true or false")
            return None
        return node.value

    def integer(self, node: Node | None, path: str, *, minimum: int) -> int | None:
        if node is None:
            return None
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int):
            self._wrong_type(node, path, "a whole number")
            return None
        if value < minimum:
            bound = "positive" if minimum == 1 else f"at least {minimum}"
            self.error(node.line, path, f"must be {bound}")
            return None
        if value > INT64_MAX:
            self.error(node.line, path, "is too large")
            return None
        return value

    def positive_int(self, node: Node | None, path: str) -> int | None:
        return self.integer(node, path, minimum=1)

    def number(self, node: Node | None, path: str) -> Decimal | None:
        if node is None:
            return None
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            self._wrong_type(node, path, "a number")
            return None
        return Decimal(value)

    def fraction(self, node: Node | None, path: str) -> Decimal | None:
        """A number in [0, 1] (quality scores and floors, thresholds)."""
        value = self.number(node, path)
        if value is None or node is None:
            return None
        if not 0 <= value <= 1:
            self.error(node.line, path, "must be between 0 and 1")
            return None
        return value

    def usd(self, node: Node | None, path: str) -> int | None:
        """A non-negative USD amount, exactly in nano-USD."""
        value = self.number(node, path)
        if value is None or node is None:
            return None
        if value < 0:
            self.error(node.line, path, "must not be negative")
            return None
        try:
            nanos = usd_to_nanos(value)
        except MoneyError:
            self.error(
                node.line,
                path,
                f"{value:f} has more than 9 decimal places (finer than one nano-USD)",
            )
            return None
        if nanos > INT64_MAX:
            self.error(node.line, path, "is too large")
            return None
        return nanos

    def usd_per_mtok(self, node: Node | None, path: str) -> int | None:
        """A price in USD per million tokens, as nano-USD per million tokens.

        The scale is the same as `usd`: $0.15 per Mtok is 150,000,000 nanos per Mtok.
        """
        return self.usd(node, path)


class Names:
    """Names declared in one namespace (models, capabilities, …); repeats are problems."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._lines: dict[str, int] = {}

    def declare(self, reader: FieldReader, name_node: Node, path: str) -> bool:
        """Record a name; reports and returns False if it was declared before."""
        name = str(name_node.value)
        if name in self._lines:
            reader.error(
                name_node.line,
                path,
                f"duplicate {self.kind} name {name!r} (first on line {self._lines[name]})",
            )
            return False
        self._lines[name] = name_node.line
        return True

    def __contains__(self, name: object) -> bool:
        return name in self._lines

    def known(self) -> Collection[str]:
        return self._lines.keys()
