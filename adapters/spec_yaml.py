"""YAML model specs: `ModelSpec` to text and back, with errors naming the file, line and key.

A spec file is a mapping of `field: value` lines; every key is optional and a missing key takes
its default. A top-level `preset: <name>` key (for example `preset: mixture_k10`) starts from
that preset's spec and the other keys override it, whatever their order in the file.

Everything is derived from `attrs.fields(ModelSpec)`, so a new spec field needs no change here.
"""

from __future__ import annotations

import contextlib
import difflib
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import cattrs
import yaml
from cattrs.errors import ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn, override

from ssvae.adapters.files import atomic_write_text
from ssvae.domain.echo import short_repr
from ssvae.domain.errors import SpecError
from ssvae.domain.spec import PRESETS, ModelSpec, fit_to_data, preset

PRESET_KEY = "preset"

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


class _TooLarge(SpecError):
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
                raise _TooLarge(
                    f"this value expands to more than {MAX_VALUES:,} values (aliases such as "
                    "*name repeat a whole node); a spec or experiment needs a few dozen, so "
                    "write them out",
                    node.start_mark,
                )
            if levels > MAX_NESTING:
                raise _TooLarge(
                    f"values nest more than {MAX_NESTING} levels deep through aliases; a spec "
                    "or experiment nests 4 at most",
                    node.start_mark,
                )
            expanded[key] = (values, levels)
        elif key in open_nodes:
            raise _TooLarge(
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
        raise _TooLarge(
            f"the number {short_repr(node.value, 40)} has {len(node.value):,} characters; "
            f"write at most {MAX_NUMBER_LENGTH}",
            node.start_mark,
        )


class _SpecLoader(yaml.SafeLoader):
    """The safe loader, reading `1e-3` as a float, within the limits above.

    Every error is a yaml.YAMLError (the syntax, a value that does not convert) or a
    `_TooLarge` SpecError (a limit); nothing else escapes.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nesting = 0

    def fetch_flow_collection_start(self, token_class: Any) -> None:
        """Refuse deep `[[[...` while scanning: the scanner's cost grows with the square of
        the open brackets (it keeps a possible key per level), before any node is composed."""
        if self.flow_level >= MAX_NESTING:
            raise _TooLarge(
                f"values nest more than {MAX_NESTING} levels deep; a spec or experiment nests 4 "
                "at most",
                self.get_mark(),
            )
        super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._nesting += 1
        try:
            if self._nesting > MAX_NESTING:
                raise _TooLarge(
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


def _refuse_collection_tag(loader: _SpecLoader, node: yaml.Node) -> None:
    """Sets and ordered pairs (`!!set`, `!!omap`, `!!pairs`) are neither lists nor mappings:
    a file whose top level is one would pass the node checks and fail where a mapping is read."""
    kind = str(node.tag).rsplit(":", 1)[-1]
    raise yaml.constructor.ConstructorError(
        None, None, f"!!{kind} is not supported; write a list or a mapping", node.start_mark
    )


_SpecLoader.add_implicit_resolver(_FLOAT_TAG, _FLOAT_WITHOUT_DOT, list("-+0123456789"))
_SpecLoader.add_constructor(_INT_TAG, _SpecLoader.construct_yaml_int)
_SpecLoader.add_constructor(_FLOAT_TAG, _SpecLoader.construct_yaml_float)
for _tag in ("set", "omap", "pairs"):
    _SpecLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_collection_tag)


class _SpecDumper(yaml.SafeDumper):
    """The safe dumper, writing lists inline (`hidden_sizes: [500, 500]`) and mappings as blocks."""


def _represent_inline_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)


_SpecDumper.add_representer(list, _represent_inline_list)


def _keep(value: Any, _: Any) -> Any:
    """Pass a value through untouched: the spec's own validators judge it.

    cattrs would coerce (`int(3.7)` is 3, `bool("false")` is True) and hide the user's mistake.
    """
    return value


def _build_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=False)
    options: dict[str, Any] = {a.name: override(struct_hook=_keep) for a in attrs.fields(ModelSpec)}
    options["_cattrs_forbid_extra_keys"] = True
    structure = make_dict_structure_fn(ModelSpec, converter, **options)
    converter.register_structure_hook(ModelSpec, structure)
    return converter


_CONVERTER = _build_converter()


def known_keys() -> tuple[str, ...]:
    """Every key a spec file may hold: `preset`, then the spec fields in declaration order."""
    return (PRESET_KEY, *ModelSpec.field_names())


# ---------------------------------------------------------------------------------------------
# Writing.


def _header() -> str:
    return (
        "# ssvae model spec. Every key is optional: a missing key takes its default.\n"
        f"# '{PRESET_KEY}: <name>' ({', '.join(PRESETS)}) starts from that preset;\n"
        "# the other keys override it.\n"
    )


def _entry(name: str, value: Any, doc: str) -> str:
    """One key as YAML, its description as a comment beside it (above it if it spans lines)."""
    text = yaml.dump(
        {name: value}, Dumper=_SpecDumper, default_flow_style=False, sort_keys=False, width=10**6
    ).rstrip("\n")
    if not doc:
        return text
    comment = "# " + " ".join(doc.split())
    return f"{text}  {comment}" if "\n" not in text else f"{comment}\n{text}"


def spec_to_yaml(spec: ModelSpec) -> str:
    """The spec as YAML text: fields in declaration order, tuples as lists, docs as comments."""
    values: dict[str, Any] = _CONVERTER.unstructure(spec)
    docs = ModelSpec.field_docs()
    body = "\n".join(_entry(name, value, docs.get(name, "")) for name, value in values.items())
    return _header() + body + "\n"


def save_spec(spec: ModelSpec, path: str | Path) -> None:
    """Write `spec` to `path` atomically (the old file stays whole if anything fails)."""
    target = Path(path)
    try:
        atomic_write_text(target, spec_to_yaml(spec))
    except OSError as error:
        raise SpecError(
            f"cannot write model spec file {target}: {error.strerror or error}; "
            "check the folder exists and is writable"
        ) from None


# ---------------------------------------------------------------------------------------------
# Reading.


def _where(source_name: str, line: int | None) -> str:
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
    return SpecError(f"{_where(source_name, line)}: invalid YAML: {detail}; fix the syntax")


def _key_lines(node: yaml.MappingNode, source_name: str) -> dict[str, int]:
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
def _located_errors(source_name: str) -> Iterator[None]:
    """YAML errors and limits met inside the block as SpecErrors naming the file and line."""
    try:
        yield
    except yaml.YAMLError as error:
        raise _yaml_error(error, source_name) from None
    except _TooLarge as error:
        raise SpecError(f"{_where(source_name, error.line)}: {error.problem}") from None


def load_yaml_node(text: str, source_name: str) -> tuple[_SpecLoader, yaml.Node | None]:
    """A loader over `text` and the document's root node (None for an empty document).

    SpecError, located, for invalid YAML and for a document beyond the limits. The caller
    builds the values with `construct_yaml` and disposes the loader.
    """
    with _located_errors(source_name):
        loader = _SpecLoader(text)  # refuses unprintable characters at once
    try:
        with _located_errors(source_name):
            return loader, loader.get_single_node()
    except SpecError:
        loader.dispose()
        raise


def construct_yaml(loader: _SpecLoader, node: yaml.Node, source_name: str) -> Any:
    """The values of `node` (from `load_yaml_node`); SpecError, located, where one does not
    convert or is too long."""
    with _located_errors(source_name):
        return loader.construct_document(node)


def parse_spec_yaml(
    text: str, source_name: str = "<string>"
) -> tuple[dict[Any, Any], dict[str, int]]:
    """The top-level mapping of `text` and the 1-based line of each key, not yet validated.

    For merging command-line flags over a file before `spec_from_mapping`.
    """
    loader, node = load_yaml_node(text, source_name)
    try:
        if node is None:  # an empty file: every field takes its default
            return {}, {}
        if not isinstance(node, yaml.MappingNode):
            found = "a list" if isinstance(node, yaml.SequenceNode) else short_repr(node.value)
            raise SpecError(
                f"{_where(source_name, node.start_mark.line + 1)}: a model spec is a mapping "
                f"of 'key: value' lines, found {found}"
            )
        lines = _key_lines(node, source_name)
        data = construct_yaml(loader, node, source_name)
    finally:
        loader.dispose()
    return dict(data), lines


def _assigned_value(raw: str) -> Any:
    """`raw` read as YAML, or `raw` itself where it is not valid YAML."""
    try:
        loader = _SpecLoader(raw)
    except yaml.YAMLError:
        return raw
    try:
        return loader.get_single_data()
    except yaml.YAMLError:
        return raw
    finally:
        loader.dispose()


def parse_assignments(assignments: Sequence[str]) -> dict[str, Any]:
    """`KEY=VALUE` texts (from --set) as a mapping; each value is read as YAML (`64`, `[64]`).

    A value that is not valid YAML stays text, for the spec's validation to judge. SpecError
    for a text without `=`, and for a value beyond the limits that files have too.
    """
    values: dict[str, Any] = {}
    for text in assignments:
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            raise SpecError(
                f"--set {short_repr(text)} is invalid: write KEY=VALUE, e.g. --set batch_size=64"
            )
        try:
            values[key.strip()] = _assigned_value(raw)
        except _TooLarge as error:
            raise SpecError(f"--set {key.strip()[:40]}=...: {error.problem}") from None

    return values


def _unknown_keys_error(
    unknown: list[Any], source_name: str, key_lines: Mapping[str, int]
) -> SpecError:
    known = known_keys()
    parts = []
    for key in unknown:
        notes = []
        line = key_lines.get(str(key))
        if line is not None:
            notes.append(f"line {line}")
        close = difflib.get_close_matches(str(key), known, n=3, cutoff=0.6)
        if close:
            notes.append("did you mean " + " or ".join(repr(c) for c in close) + "?")
        parts.append(short_repr(key) + (f" ({'; '.join(notes)})" if notes else ""))
    first_line = key_lines.get(str(unknown[0]))
    return SpecError(
        f"{_where(source_name, first_line)}: unknown model spec key(s) {', '.join(parts)}; "
        f"rename or remove them (known keys: {', '.join(known)})"
    )


def _line_of_error(
    message: str, values: Mapping[Any, Any], key_lines: Mapping[str, int]
) -> int | None:
    """The line of the first field the spec's message names that the user set.

    The spec's messages quote field names ('seed'); a cross-field error may name a field that
    came from the preset, in which case the `preset` key's line is the best place to point at.
    """
    fields = set(ModelSpec.field_names())
    for name in re.findall(r"'([A-Za-z_][A-Za-z0-9_]*)'", message):
        if name in fields and name in values:
            return key_lines.get(name)
    return key_lines.get(PRESET_KEY)


def _start_values(
    preset_name: Any, source_name: str, key_lines: Mapping[str, int]
) -> dict[str, Any]:
    """The field values of the named preset, as a plain dict that user values can override."""
    if not isinstance(preset_name, str) or preset_name not in PRESETS:
        raise SpecError(
            f"{_where(source_name, key_lines.get(PRESET_KEY))}: unknown model preset "
            f"{short_repr(preset_name)}; available presets: {', '.join(PRESETS)}"
        )
    return attrs.asdict(preset(preset_name), recurse=False)


def spec_from_mapping(
    mapping: Mapping[Any, Any],
    source_name: str = "<mapping>",
    key_lines: Mapping[str, int] | None = None,
) -> ModelSpec:
    """A spec from `field: value` pairs (an optional `preset` key first supplies the rest).

    `source_name` and `key_lines` (key -> 1-based line) only locate errors. To merge CLI flags
    over a file, update the mapping from `parse_spec_yaml` with the flags and drop the flags'
    keys from its lines, so that an error in a flag names no line of the file.
    """
    lines = dict(key_lines or {})
    values = dict(mapping)
    start = (
        _start_values(values.pop(PRESET_KEY), source_name, lines) if PRESET_KEY in values else {}
    )
    try:
        # Over a preset, its data-dependent choices fit the data (as `preset` does).
        merged = fit_to_data({**start, **values}) if start else values
        return _CONVERTER.structure(merged, ModelSpec)
    except ForbiddenExtraKeysError as error:
        unknown = [key for key in values if key in error.extra_fields]
        raise _unknown_keys_error(unknown, source_name, lines) from None
    except SpecError as error:
        message = str(error)
        line = _line_of_error(message, values, lines)
        raise SpecError(f"{_where(source_name, line)}: {message}") from None


def spec_from_yaml(text: str, source_name: str = "<string>") -> ModelSpec:
    """A spec from YAML text; every error names `source_name` and the offending line."""
    values, lines = parse_spec_yaml(text, source_name)
    return spec_from_mapping(values, source_name, lines)


def load_spec(path: str | Path) -> ModelSpec:
    """The spec stored in the YAML file at `path`."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"model spec file {source} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(f"cannot read model spec file {source}: {error}") from None
    return spec_from_yaml(text, str(source))
