"""YAML model specs: `ModelSpec` to text and back, with errors naming the file, line and key.

A spec file is a mapping of `field: value` lines; every key is optional and a missing key takes
its default. A top-level `preset: <name>` key (for example `preset: mixture_k10`) starts from
that preset's spec and the other keys override it, whatever their order in the file.

The keys are the spec's flat field names, read and written through `ModelSpec.from_fields` and
`to_fields`: files written before the fields were grouped load unchanged, and a new spec field
needs no change here.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ssvae.adapters.files import atomic_write_text
from ssvae.adapters.yaml.loader import (
    YamlLimitError,
    assigned_value,
    construct_yaml,
    key_line_numbers,
    load_yaml_node,
    where,
)
from ssvae.domain.comparison import PRESET_KEY
from ssvae.domain.echo import short_repr
from ssvae.domain.errors import SpecError
from ssvae.domain.spec import FIELD_GROUPS, PRESETS, ModelSpec, fit_to_data, preset


class _SpecDumper(yaml.SafeDumper):
    """The safe dumper, writing lists inline (`hidden_sizes: [500, 500]`) and mappings as blocks."""


def _represent_inline_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)


_SpecDumper.add_representer(list, _represent_inline_list)


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
    """The spec as YAML text: flat keys under a comment per group, docs as comments beside them.

    The keys stay flat, as users write them in files, `--set` and experiments; the group
    comments only show where each field lives in `ModelSpec`.
    """
    docs = ModelSpec.field_docs()
    lines: list[str] = []
    group = ""
    for name, value in spec.to_fields().items():
        if FIELD_GROUPS[name] != group:
            group = FIELD_GROUPS[name]
            lines.append(f"\n# {group}")
        plain = list(value) if isinstance(value, tuple) else value
        lines.append(_entry(name, plain, docs.get(name, "")))
    return _header() + "\n".join(lines) + "\n"


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
                f"{where(source_name, node.start_mark.line + 1)}: a model spec is a mapping "
                f"of 'key: value' lines, found {found}"
            )
        lines = key_line_numbers(node, source_name)
        data = construct_yaml(loader, node, source_name)
    finally:
        loader.dispose()
    return dict(data), lines


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
            values[key.strip()] = assigned_value(raw)
        except YamlLimitError as error:
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
        f"{where(source_name, first_line)}: unknown model spec key(s) {', '.join(parts)}; "
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
            f"{where(source_name, key_lines.get(PRESET_KEY))}: unknown model preset "
            f"{short_repr(preset_name)}; available presets: {', '.join(PRESETS)}"
        )
    return preset(preset_name).to_fields()


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
    unknown = [key for key in values if key != PRESET_KEY and key not in FIELD_GROUPS]
    if unknown:
        raise _unknown_keys_error(unknown, source_name, lines)
    start = (
        _start_values(values.pop(PRESET_KEY), source_name, lines) if PRESET_KEY in values else {}
    )
    try:
        # Over a preset, its data-dependent choices fit the data (as `preset` does).
        merged = fit_to_data({**start, **values}) if start else values
        # Values pass to the spec untouched: its validators judge them, where a converter
        # would coerce (`int(3.7)` is 3, `bool("false")` is True) and hide the user's mistake.
        return ModelSpec.from_fields(**merged)
    except SpecError as error:
        message = str(error)
        line = _line_of_error(message, values, lines)
        raise SpecError(f"{where(source_name, line)}: {message}") from None


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
