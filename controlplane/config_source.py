"""Reading configuration YAML into a tree of values that remember their source line.

The schema check (`controlplane.config`) needs two things PyYAML's usual loaders throw
away: the line every value came from, so each problem can be reported as
`FILE:LINE: path: message`, and the exact text of every number, so that a price is a
`Decimal` and never passes through a float. This module composes the document into
PyYAML nodes and builds `Node` values from them; it knows nothing of the schema.

Pure: may import yaml; must not import grpc, sqlalchemy or `faregate.v1`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, TypeAlias

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

Scalar: TypeAlias = str | int | Decimal | bool | None

# Aliases let a small document expand into a huge tree ("billion laughs"); a
# configuration never needs more than a few thousand values.
MAX_NODES = 200_000

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_STR = "tag:yaml.org,2002:str"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


@dataclass(frozen=True, slots=True)
class ConfigError:
    """One problem in a configuration file, located by line and by path."""

    line: int
    path: str
    message: str

    def render(self, source_name: str) -> str:
        if self.path:
            return f"{source_name}:{self.line}: {self.path}: {self.message}"
        return f"{source_name}:{self.line}: {self.message}"


class ConfigInvalid(ValueError):
    """A configuration with at least one problem; carries every problem found."""

    def __init__(self, source_name: str, errors: tuple[ConfigError, ...]) -> None:
        self.source_name = source_name
        self.errors = errors
        super().__init__("\n".join(self.lines))

    @property
    def lines(self) -> tuple[str, ...]:
        return tuple(error.render(self.source_name) for error in self.errors)


@dataclass(frozen=True, slots=True)
class Node:
    """A YAML value and the 1-based line it starts on.

    `value` is a scalar, a mapping of string keys to nodes, or a tuple of nodes.
    `key_lines` gives, for a mapping, the line of each key (where an unknown key
    is reported).
    """

    value: Scalar | Mapping[str, Node] | tuple[Node, ...]
    line: int
    key_lines: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.value, Mapping)

    @property
    def is_sequence(self) -> bool:
        return isinstance(self.value, tuple)

    def plain(self) -> Any:
        """The value as plain Python (dict, list, scalars), for sections kept opaque."""
        if isinstance(self.value, Mapping):
            return {key: child.plain() for key, child in self.value.items()}
        if isinstance(self.value, tuple):
            return [child.plain() for child in self.value]
        return self.value


def join_path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


class _Builder:
    def __init__(self) -> None:
        self.errors: list[ConfigError] = []
        self._constructor = SafeConstructor()
        self._active: set[int] = set()
        self._count = 0
        self._too_large = False

    def error(self, line: int, path: str, message: str) -> None:
        self.errors.append(ConfigError(line, path, message))

    def build(self, node: yaml.Node, path: str) -> Node:
        line = node.start_mark.line + 1
        self._count += 1
        if self._count > MAX_NODES:
            if not self._too_large:
                self._too_large = True
                self.error(line, path, f"document expands to more than {MAX_NODES} values")
            return Node(None, line)
        if id(node) in self._active:
            self.error(line, path, "recursive alias")
            return Node(None, line)
        self._active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, path, line)
            if isinstance(node, SequenceNode):
                items = tuple(
                    self.build(item, join_path(path, i)) for i, item in enumerate(node.value)
                )
                return Node(items, line)
            assert isinstance(node, ScalarNode)
            return Node(self._scalar(node, path, line), line)
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: MappingNode, path: str, line: int) -> Node:
        own_keys: dict[str, int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == _STR:
                key_line = key_node.start_mark.line + 1
                if key_node.value in own_keys:
                    self.error(
                        key_line,
                        join_path(path, key_node.value),
                        f"duplicate key (first on line {own_keys[key_node.value]})",
                    )
                else:
                    own_keys[key_node.value] = key_line
        # Merge keys (`<<: *defaults`) are resolved by PyYAML itself; explicit keys win.
        self._constructor.flatten_mapping(node)
        values: dict[str, Node] = {}
        key_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not (isinstance(key_node, ScalarNode) and key_node.tag == _STR):
                self.error(key_line, path, "keys must be strings")
                continue
            key = key_node.value
            values[key] = self.build(value_node, join_path(path, key))
            key_lines[key] = key_line
        return Node(MappingProxyType(values), line, MappingProxyType(key_lines))

    def _scalar(self, node: ScalarNode, path: str, line: int) -> Scalar:
        tag = node.tag
        if tag == _STR:
            return str(node.value)
        if tag == _INT:
            value: int = self._constructor.construct_yaml_int(node)
            return value
        if tag == _FLOAT:
            return self._decimal(node, path, line)
        if tag == _BOOL:
            flag: bool = self._constructor.construct_yaml_bool(node)
            return flag
        if tag == _NULL:
            return None
        if tag == _TIMESTAMP:
            # Dates are not part of the schema; keep the text so nothing depends on
            # the local time zone and the value survives JSON.
            return str(node.value)
        self.error(line, path, f"unsupported YAML tag {tag}")
        return None

    def _decimal(self, node: ScalarNode, path: str, line: int) -> Decimal | None:
        text = str(node.value).replace("_", "")
        try:
            value = Decimal(text)
        except InvalidOperation:
            # `.inf`, `.nan` and YAML 1.1 sexagesimal floats (`1:30.5`).
            self.error(line, path, f"{node.value!r} is not a finite decimal number")
            return None
        if not value.is_finite():
            self.error(line, path, f"{node.value!r} is not a finite decimal number")
            return None
        return value


def read_tree(text: str) -> tuple[Node | None, tuple[ConfigError, ...]]:
    """Compose one YAML document into a `Node` tree.

    Returns the tree (None for an empty document or a syntax error) and the
    problems found while reading: syntax errors, duplicate keys, non-string keys,
    unsupported tags and numbers that are not finite decimals.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "invalid YAML"
        return None, (ConfigError(line, "", f"invalid YAML: {problem}"),)
    except yaml.YAMLError as exc:
        return None, (ConfigError(1, "", f"invalid YAML: {exc}"),)
    if root is None:
        return None, ()
    builder = _Builder()
    tree = builder.build(root, "")
    return tree, tuple(builder.errors)
