"""The bounded YAML loader that spec files, experiment files and `--set` values share.

Both kinds of file are small: a few dozen values nested 4 levels at most. Reading them through
one loader means they read numbers alike (`1e-3` is a float in both) and refuse a hostile
document the same way, with an error that names the file and the line.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import yaml

from ssvae.domain.echo import short_repr
from ssvae.domain.errors import SpecError

# YAML 1.1 (PyYAML) reads `1e-3` as a string because its float pattern needs a dot; users
# write learning rates that way, so floats without a dot are accepted too (as YAML 1.2 does).
_FLOAT_WITHOUT_DOT = re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$")

# What a spec or experiment file (or a --set value) may hold. Both are small: a few dozen
# values nested 4 levels at most. The limits keep a hostile document cheap to refuse:
# - an alias (`*name`) repeats a whole node without copying it, so 300 bytes of nested
#   aliases stand for billions of values, which any later walk (a message's repr, a merge
#   key `<<`) would build in memory;
# - PyYAML composes nested collections recursively: 5,000 brackets exhaust Python's stack;
# - int() refuses more than 4,300 digits (a ValueError) and a long `1:2:...` base-60 number
#   overflows a float; no spec value needs more than a few dozen characters.
MAX_VALUES = 10_000
MAX_NESTING = 32
MAX_NUMBER_LENGTH = 100
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"


class YamlLimitError(SpecError):
    """A document beyond the loader's limits: `problem` says which, `line` where (1-based)."""

    def __init__(self, problem: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = mark.line + 1 if mark is not None else None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph that expands to more than MAX_VALUES values, nests deeper than
    MAX_NESTING or contains itself (`&a [*a]`).

    Aliases make the graph a DAG of shared nodes: each node's expanded size is computed once,
    children first, so the walk costs the file's size, not the expansion's.
    """
    expanded: dict[int, tuple[int, int]] = {}  # id(node) -> (values, levels) once expanded
    open_nodes: set[int] = set()  # nodes whose children are being expanded: the current path
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            parts = [expanded[id(child)] for child in _children(node)]
            values = 1 + sum(size for size, _ in parts)
            levels = 1 + max((depth for _, depth in parts), default=0)
            if values > MAX_VALUES:
                raise YamlLimitError(
                    f"this value expands to more than {MAX_VALUES:,} values (aliases such as "
                    "*name repeat a whole node); a spec or experiment needs a few dozen, so "
                    "write them out",
                    node.start_mark,
                )
            if levels > MAX_NESTING:
                raise YamlLimitError(
                    f"values nest more than {MAX_NESTING} levels deep through aliases; a spec "
                    "or experiment nests 4 at most",
                    node.start_mark,
                )
            expanded[key] = (values, levels)
        elif key in open_nodes:
            raise YamlLimitError(
                "this value contains itself through an alias (&name ... *name inside it); "
                "write the values out",
                node.start_mark,
            )
        elif key not in expanded:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))


def _check_number(node: yaml.ScalarNode) -> None:
    if len(node.value) > MAX_NUMBER_LENGTH:
        raise YamlLimitError(
            f"the number {short_repr(node.value, 40)} has {len(node.value):,} characters; "
            f"write at most {MAX_NUMBER_LENGTH}",
            node.start_mark,
        )


class BoundedLoader(yaml.SafeLoader):
    """The safe loader, reading `1e-3` as a float, within the limits above.

    Every error is a yaml.YAMLError (the syntax, a value that does not convert) or a
    `YamlLimitError` SpecError (a limit); nothing else escapes.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nesting = 0

    def fetch_flow_collection_start(self, token_class: Any) -> None:
        """Refuse deep `[[[...` while scanning: the scanner's cost grows with the square of
        the open brackets (it keeps a possible key per level), before any node is composed."""
        if self.flow_level >= MAX_NESTING:
            raise YamlLimitError(
                f"values nest more than {MAX_NESTING} levels deep; a spec or experiment nests 4 "
                "at most",
                self.get_mark(),
            )
        super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._nesting += 1
        try:
            if self._nesting > MAX_NESTING:
                raise YamlLimitError(
                    f"values nest more than {MAX_NESTING} levels deep; a spec or experiment "
                    "nests 4 at most",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self._nesting -= 1

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None:
            _check_expansion(node)
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """A scalar that does not convert (`2001-13-01`, `!!int ''`) is a YAML error at its line."""
        try:
            return super().construct_object(node, deep)
        except SpecError:
            raise
        except (ArithmeticError, AttributeError, LookupError, TypeError, ValueError) as error:
            what = short_repr(node.value, 40) if isinstance(node, yaml.ScalarNode) else "a value"
            kind = str(node.tag).rsplit(":", 1)[-1]
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {what} as {kind} ({error})", node.start_mark
            ) from None

    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:
        _check_number(node)
        return super().construct_yaml_int(node)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> Any:
        _check_number(node)
        return super().construct_yaml_float(node)


def _refuse_collection_tag(loader: BoundedLoader, node: yaml.Node) -> None:
    """Sets and ordered pairs (`!!set`, `!!omap`, `!!pairs`) are neither lists nor mappings:
    a file whose top level is one would pass the node checks and fail where a mapping is read."""
    kind = str(node.tag).rsplit(":", 1)[-1]
    raise yaml.constructor.ConstructorError(
        None, None, f"!!{kind} is not supported; write a list or a mapping", node.start_mark
    )


BoundedLoader.add_implicit_resolver(_FLOAT_TAG, _FLOAT_WITHOUT_DOT, list("-+0123456789"))
BoundedLoader.add_constructor(_INT_TAG, BoundedLoader.construct_yaml_int)
BoundedLoader.add_constructor(_FLOAT_TAG, BoundedLoader.construct_yaml_float)
for _tag in ("set", "omap", "pairs"):
    BoundedLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_collection_tag)


def where(source_name: str, line: int | None) -> str:
    return f"{source_name}:{line}" if line is not None else source_name


def _yaml_error(error: yaml.YAMLError, source_name: str) -> SpecError:
    mark = getattr(error, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(error, "problem", None) or str(error)
    if isinstance(error, yaml.reader.ReaderError):  # its text names PyYAML's own input
        char = error.character
        code = char if isinstance(char, int) else ord(str(char)[:1] or "\0")
        problem = f"character U+{code:04X} at position {error.position}: {error.reason}"
    context = getattr(error, "context", None)
    context_mark = getattr(error, "context_mark", None)
    if context and context_mark is not None and context_mark.line + 1 != line:
        context = f"{context} started at line {context_mark.line + 1}"
    detail = f"{problem} ({context})" if context else problem
    detail = " ".join(str(detail).split())  # some YAML errors span lines; a message is one
    if len(detail) > 300:  # PyYAML quotes tags and anchors whole, whatever their length
        detail = detail[:297] + "..."
    return SpecError(f"{where(source_name, line)}: invalid YAML: {detail}; fix the syntax")


def key_line_numbers(node: yaml.MappingNode, source_name: str) -> dict[str, int]:
    """The 1-based line of each top-level key; a repeated key is an error (YAML keeps the last).

    Keys are names: a list or mapping as a key (`? [a, b]`) is refused here, where its line
    is known.
    """
    lines: dict[str, int] = {}
    for key_node, _ in node.value:
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            raise SpecError(
                f"{source_name}:{line}: a key is a list or mapping; keys are names such as "
                "latent_dim"
            )
        key = str(key_node.value)
        if key in lines:
            raise SpecError(
                f"{source_name}:{line}: key {short_repr(key)} appears twice (lines {lines[key]} "
                f"and {line}); keep one"
            )
        lines[key] = line
    return lines


@contextlib.contextmanager
def located_errors(source_name: str) -> Iterator[None]:
    """YAML errors and limits met inside the block as SpecErrors naming the file and line."""
    try:
        yield
    except yaml.YAMLError as error:
        raise _yaml_error(error, source_name) from None
    except YamlLimitError as error:
        raise SpecError(f"{where(source_name, error.line)}: {error.problem}") from None


def load_yaml_node(text: str, source_name: str) -> tuple[BoundedLoader, yaml.Node | None]:
    """A loader over `text` and the document's root node (None for an empty document).

    SpecError, located, for invalid YAML and for a document beyond the limits. The caller
    builds the values with `construct_yaml` and disposes the loader.
    """
    with located_errors(source_name):
        loader = BoundedLoader(text)  # refuses unprintable characters at once
    try:
        with located_errors(source_name):
            return loader, loader.get_single_node()
    except SpecError:
        loader.dispose()
        raise


def construct_yaml(loader: BoundedLoader, node: yaml.Node, source_name: str) -> Any:
    """The values of `node` (from `load_yaml_node`); SpecError, located, where one does not
    convert or is too long."""
    with located_errors(source_name):
        return loader.construct_document(node)


def assigned_value(raw: str) -> Any:
    """`raw` read as YAML, or `raw` itself where it is not valid YAML."""
    try:
        loader = BoundedLoader(raw)
    except yaml.YAMLError:
        return raw
    try:
        return loader.get_single_data()
    except yaml.YAMLError:
        return raw
    finally:
        loader.dispose()
