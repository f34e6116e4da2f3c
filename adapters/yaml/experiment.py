"""Experiment files for `ssvae compare`: which models, which data, how long.

An experiment file is a YAML mapping; every key is optional:

    models:                 # preset names, or mappings: an optional `preset`, an optional
      - standard            # `name` and any model spec field (see `ssvae.domain.spec`)
      - preset: mixture_k10
        name: mixture_z2
        latent_dim: 2
    dataset: mnist          # mnist or fashion_mnist
    num_samples: 5000       # training samples drawn from the train split
    num_labeled: 50         # of which labelled, balanced over classes
    num_test: 0             # test samples (0: the whole test split)
    sampling: stratified    # stratified or random
    epochs: 10              # max_epochs of every model (a model's own max_epochs wins)
    seed: 0                 # the data selection and every model's seed
    out: artifacts/comparisons
    overrides:              # spec fields applied to every model (a model's own keys win)
      batch_size: 128

The reader reads the file and builds specs from final values; which value wins over which
(the file's keys, a model's own keys, command-line flags) is decided by
`ssvae.application.experiments`. Every error names the file, the line and the key. YAML
parsing and key lines come from `ssvae.adapters.yaml.loader`, so both kinds of file read
numbers alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import yaml

from ssvae.adapters.yaml.loader import construct_yaml, key_line_numbers, load_yaml_node, where
from ssvae.adapters.yaml.spec import parse_assignments, spec_from_mapping
from ssvae.domain.comparison import (
    EXPERIMENT_SETTINGS,
    PRESET_KEY,
    ExperimentError,
    ExperimentFile,
    ModelEntry,
    check_model_name,
    did_you_mean,
)
from ssvae.domain.echo import short_repr
from ssvae.domain.errors import SpecError
from ssvae.domain.spec import PRESETS, ModelSpec

TOP_KEYS: tuple[str, ...] = ("models", *EXPERIMENT_SETTINGS, "epochs", "overrides")
NAME_KEY = "name"


@attrs.frozen
class _Located:
    """A value read from a file with the line of each of its keys (for error messages)."""

    value: Any
    line: int | None = None
    key_lines: Mapping[str, int] = attrs.field(factory=dict)


# ---------------------------------------------------------------------------------------------
# Reading a file into located values.


def _mapping_node(node: yaml.Node, source: str, what: str) -> yaml.MappingNode:
    if not isinstance(node, yaml.MappingNode):
        raise ExperimentError(
            f"{where(source, node.start_mark.line + 1)}: {what} must be a mapping of "
            "'key: value' lines"
        )
    return node


def _child(node: yaml.MappingNode, key: str) -> yaml.Node | None:
    for key_node, value_node in node.value:
        if str(key_node.value) == key:
            return value_node  # type: ignore[no-any-return]
    return None


def _model_entries(node: yaml.Node, values: Any, source: str) -> list[_Located]:
    if not isinstance(node, yaml.SequenceNode) or not isinstance(values, list):
        raise ExperimentError(
            f"{where(source, node.start_mark.line + 1)}: 'models' must be a list of preset "
            f"names or mappings, e.g. models: [standard, mixture_k10]"
        )
    if not values:
        raise ExperimentError(
            f"{where(source, node.start_mark.line + 1)}: 'models' is empty; list at least one "
            f"model (presets: {', '.join(PRESETS)})"
        )
    entries = []
    for item_node, item in zip(node.value, values, strict=True):
        line = item_node.start_mark.line + 1
        if isinstance(item_node, yaml.MappingNode) and isinstance(item, dict):
            entries.append(_Located(item, line, key_line_numbers(item_node, source)))
        elif isinstance(item, str):
            entries.append(_Located(item, line))
        else:
            raise ExperimentError(
                f"{where(source, line)}: model entry {short_repr(item)} is invalid: give a "
                "preset name "
                f"({', '.join(PRESETS)}) or a mapping with 'preset' and spec fields"
            )
    return entries


@attrs.frozen
class _RawFile:
    """The top-level values of an experiment file, located."""

    source: str
    values: dict[str, Any]
    key_lines: dict[str, int]
    models: list[_Located] | None
    overrides: _Located


def read_experiment_text(text: str, source: str) -> _RawFile:
    """The file's values and lines, with unknown top-level keys rejected."""
    try:
        loader, root = load_yaml_node(text, source)
    except SpecError as error:
        raise ExperimentError(str(error)) from None
    try:
        if root is None:
            return _RawFile(source, {}, {}, None, _Located({}))
        node = _mapping_node(root, source, "an experiment file")
        lines = key_line_numbers(node, source)
        data = construct_yaml(loader, node, source)
    except SpecError as error:
        raise ExperimentError(str(error)) from None
    finally:
        loader.dispose()
    unknown = [k for k in data if k not in TOP_KEYS]
    if unknown:
        key = unknown[0]
        raise ExperimentError(
            f"{where(source, lines.get(str(key)))}: unknown experiment key {short_repr(key)}"
            f"{did_you_mean(str(key), TOP_KEYS)}; known keys: {', '.join(TOP_KEYS)}"
        )
    models = None
    models_node = _child(node, "models")
    if models_node is not None:
        models = _model_entries(models_node, data["models"], source)
    overrides = _Located({})
    overrides_node = _child(node, "overrides")
    if overrides_node is not None:
        if not isinstance(overrides_node, yaml.MappingNode):
            raise ExperimentError(
                f"{where(source, lines['overrides'])}: 'overrides' must be a mapping of model "
                "spec fields, e.g. overrides: {batch_size: 64}"
            )
        overrides = _Located(
            dict(data["overrides"] or {}),
            lines["overrides"],
            key_line_numbers(overrides_node, source),
        )
    return _RawFile(source, dict(data), lines, models, overrides)


def read_experiment_file(path: Path) -> _RawFile:
    """The experiment file at `path`, located."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ExperimentError(
            f"experiment file {path} does not exist; check the path (examples are in "
            "configs/comparisons/)"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ExperimentError(f"cannot read experiment file {path}: {error}") from None
    return read_experiment_text(text, str(path))


# ---------------------------------------------------------------------------------------------
# Models: names to specs.


def _default_name(entry: Mapping[str, Any]) -> str:
    """The preset's name, followed by the overridden fields: `mixture_k10_latent_dim-2`."""
    base = str(entry.get(PRESET_KEY, "custom"))
    extras = [f"{k}-{v}" for k, v in entry.items() if k not in (PRESET_KEY, NAME_KEY)]
    name = "_".join([base, *extras])
    name = re.sub(r"[^A-Za-z0-9_.+=-]+", "", name.replace(" ", ""))
    return name[:80] or "model"


def _entry(located: _Located, source: str) -> ModelEntry:
    if isinstance(located.value, str):
        return ModelEntry(located.value, {PRESET_KEY: located.value}, {}, located.line)
    values = dict(located.value)
    lines = {str(k): v for k, v in located.key_lines.items()}
    if PRESET_KEY in lines:
        lines.setdefault(PRESET_KEY, located.line or 0)
    name = values.pop(NAME_KEY, None)
    if name is None:
        name = _default_name(values)
    try:
        check_model_name(name)
    except ExperimentError as error:
        raise ExperimentError(
            f"{where(source, lines.get(NAME_KEY, located.line))}: {error}"
        ) from None
    lines.pop(NAME_KEY, None)
    return ModelEntry(str(name), values, lines, located.line)


# ---------------------------------------------------------------------------------------------
# The reader.


def _check_epochs(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ExperimentError(
            f"{where}: experiment key 'epochs' = {short_repr(value)} is invalid: must be an "
            "integer >= 1"
        )
    return value


def _relocated(
    error: SpecError,
    source: str,
    model: str,
    lines: Mapping[str, int],
    flag_fields: Mapping[str, str],
) -> SpecError:
    """`error` located at the flag or the line that set the field it names.

    The spec reader locates the fields it quotes; this also finds the flag behind a bad value and a
    cross-field error's line (e.g. `prior: mixture` set where `num_components` came from a
    preset).
    """
    message = str(error)
    if not message.startswith(f"{source}: "):
        return SpecError(f"{message} (model {short_repr(model)})")  # located already
    bare = message[len(source) + 2 :]
    for field in re.findall(r"'([A-Za-z_][A-Za-z0-9_]*)'", bare):
        if field in flag_fields:
            return SpecError(f"{flag_fields[field]}: {bare} (model {short_repr(model)})")
    for field, line in lines.items():
        if re.search(rf"\b{re.escape(field)}\b", bare):
            return SpecError(f"{source}:{line}: {bare} (model {short_repr(model)})")
    return SpecError(f"{message} (model {short_repr(model)})")


class YamlExperimentReader:
    """Reads experiment files and builds model specs from YAML values (an ExperimentReader)."""

    def read(self, path: Path) -> ExperimentFile:
        """The experiment file at `path`, its values located; its models named."""
        file = read_experiment_file(path)
        if "epochs" in file.values:
            _check_epochs(file.values["epochs"], where(file.source, file.key_lines["epochs"]))
        models = (
            tuple(_entry(e, file.source) for e in file.models) if file.models is not None else None
        )
        return ExperimentFile(
            source=file.source,
            values=file.values,
            key_lines=file.key_lines,
            models=models,
            overrides=file.overrides.value,
            override_lines=file.overrides.key_lines,
        )

    def parse_assignments(self, assignments: Sequence[str]) -> dict[str, Any]:
        """`KEY=VALUE` texts (from --set) as a mapping, read by the one --set parser."""
        try:
            return parse_assignments(assignments)
        except SpecError as error:
            raise ExperimentError(str(error)) from None

    def spec(
        self, model: ModelEntry, file: ExperimentFile, flag_fields: Mapping[str, str]
    ) -> ModelSpec:
        """The spec of `model` (final values); errors located at a line or at a flag."""
        lines = dict(model.key_lines)
        if PRESET_KEY in model.values and model.line is not None and PRESET_KEY not in flag_fields:
            lines.setdefault(PRESET_KEY, model.line)  # a bare preset name: its list item
        try:
            return spec_from_mapping(model.values, file.source, lines)
        except SpecError as error:
            raise _relocated(error, file.source, model.name, lines, flag_fields) from None
