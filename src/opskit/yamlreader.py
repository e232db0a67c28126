"""Reading YAML files whose every error names the file, the line and the field.

:func:`read_yaml` parses a document into nodes (line numbers kept); a :class:`Reader`
walks them, checking types and raising :class:`opskit.errors.DescriptorError` with
``file:line: field: problem``. ``project.yaml`` (:mod:`opskit.descriptor`) and
``opskit.yaml`` (:mod:`opskit.settings`) are read with it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import yaml

from opskit.errors import DescriptorError

T = TypeVar("T")
Node = yaml.Node


class Reader:
    """Reads a YAML node tree, checking types and naming file, line and field on error."""

    def __init__(self, path: str, loader: yaml.SafeLoader) -> None:
        self.path = path
        self.loader = loader
        self.environments: tuple[str, ...] = ()

    def error(self, node: Node | None, field: str, problem: str) -> DescriptorError:
        line = node.start_mark.line + 1 if node is not None and node.start_mark else None
        return DescriptorError(self.path, line, field, problem)

    def mapping(
        self, node: Node, field: str, allowed: Iterable[str], required: Iterable[str] = ()
    ) -> dict[str, Node]:
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            node = yaml.MappingNode("tag:yaml.org,2002:map", [], node.start_mark, node.end_mark)
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, field, "expected a mapping")
        try:
            self.loader.flatten_mapping(node)
        except yaml.YAMLError as exc:
            raise self.error(node, field, f"bad merge key: {exc}") from None
        allowed = set(allowed)
        result: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node, field)
            name = f"{field}.{key}" if field else str(key)
            if not isinstance(key, str):
                raise self.error(key_node, name, "keys must be strings")
            if allowed and key not in allowed:
                raise self.error(
                    key_node, name, f"unknown key (expected one of {', '.join(sorted(allowed))})"
                )
            if key in result:
                raise self.error(key_node, name, "duplicate key")
            result[key] = value_node
        for key in required:
            if key not in result:
                raise self.error(node, f"{field}.{key}" if field else key, "required")
        return result

    def free_mapping(self, node: Node, field: str) -> dict[str, Node]:
        return self.mapping(node, field, allowed=())

    def scalar(self, node: Node, field: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, field, "expected a single value")
        try:
            return self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            raise self.error(node, field, f"bad value: {exc}") from None

    def string(
        self, node: Node, field: str, pattern: re.Pattern[str] | None = None, what: str = ""
    ) -> str:
        value = self.scalar(node, field)
        if not isinstance(value, str):
            raise self.error(node, field, "expected a string")
        if not value:
            raise self.error(node, field, "must not be empty")
        if pattern is not None and not pattern.match(value):
            raise self.error(node, field, f"{value!r} is not a valid {what or 'value'}")
        return value

    def integer(self, node: Node, field: str, minimum: int = 0) -> int:
        value = self.scalar(node, field)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(node, field, "expected an integer")
        if value < minimum:
            raise self.error(node, field, f"must be at least {minimum}")
        return value

    def number(self, node: Node, field: str) -> float:
        value = self.scalar(node, field)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(node, field, "expected a number")
        if not value > 0 or value == float("inf"):
            raise self.error(node, field, "must be a positive number")
        return float(value)

    def choice(self, node: Node, field: str, choices: tuple[str, ...]) -> str:
        value = self.string(node, field)
        if value not in choices:
            raise self.error(node, field, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def sequence(self, node: Node, field: str) -> list[Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, field, "expected a list")
        return list(node.value)

    def each(self, node: Node, field: str, read: Callable[[Node, str], T]) -> tuple[T, ...]:
        return tuple(
            read(item, f"{field}[{i}]") for i, item in enumerate(self.sequence(node, field))
        )

    def strings(self, node: Node, field: str) -> tuple[str, ...]:
        return self.each(node, field, self.string)

    def env_name(self, node: Node, field: str) -> str:
        value = self.string(node, field)
        if self.environments and value not in self.environments:
            raise self.error(
                node,
                field,
                f"unknown environment {value!r} (environments: {', '.join(self.environments)})",
            )
        return value


def read_yaml(path: str, text: str) -> tuple[Node, yaml.SafeLoader]:
    """The root node of a YAML document and its loader; :class:`DescriptorError` (file and
    line) when it is not valid YAML or empty."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise DescriptorError(
            path, line, "", f"invalid YAML: {exc.problem or exc.context}"
        ) from None
    except yaml.YAMLError as exc:
        raise DescriptorError(path, None, "", f"invalid YAML: {exc}") from None
    except RecursionError:
        raise DescriptorError(path, None, "", "invalid YAML: nested too deeply") from None
    if root is None:
        raise DescriptorError(path, 1, "", "the file is empty")
    return root, loader
