"""Experiment files for `ssvae compare`: which models, which data, how long; flags win.

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

Precedence, lowest first: the preset, `overrides`, `epochs`/`seed`, the model's own keys, then
command-line flags. Every error names the file, the line and the key. YAML parsing and key
lines come from `ssvae.adapters.yaml.loader`, so both kinds of file read numbers alike.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import yaml

from ssvae.adapters.yaml.loader import construct_yaml, key_line_numbers, load_yaml_node, where
from ssvae.adapters.yaml.spec import PRESET_KEY, spec_from_mapping
from ssvae.adapters.yaml.spec import parse_assignments as parse_spec_assignments
from ssvae.domain.comparison import (
    DEFAULT_MODELS,
    Experiment,
    ExperimentError,
    ModelPlan,
    check_model_name,
)
from ssvae.domain.echo import short_repr
from ssvae.domain.errors import SpecError
from ssvae.domain.spec import PRESETS

DEFAULT_EPOCHS = 10
COMMAND_LINE = "command line"
SETTING_KEYS: tuple[str, ...] = (
    "dataset",
    "num_samples",
    "num_labeled",
    "num_test",
    "sampling",
    "seed",
    "out",
)
TOP_KEYS: tuple[str, ...] = ("models", *SETTING_KEYS, "epochs", "overrides")
NAME_KEY = "name"


@attrs.frozen
class _Located:
    """A value read from a file with the line of each of its keys (for error messages)."""

    value: Any
    line: int | None = None
    key_lines: Mapping[str, int] = attrs.field(factory=dict)


def _suggest(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, known, n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


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
class _ExperimentFile:
    """The top-level values of an experiment file, located."""

    source: str
    values: dict[str, Any]
    key_lines: dict[str, int]
    models: list[_Located] | None
    overrides: _Located


def read_experiment_text(text: str, source: str) -> _ExperimentFile:
    """The file's values and lines, with unknown top-level keys rejected."""
    try:
        loader, root = load_yaml_node(text, source)
    except SpecError as error:
        raise ExperimentError(str(error)) from None
    try:
        if root is None:
            return _ExperimentFile(source, {}, {}, None, _Located({}))
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
            f"{_suggest(str(key), TOP_KEYS)}; known keys: {', '.join(TOP_KEYS)}"
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
    return _ExperimentFile(source, dict(data), lines, models, overrides)


def read_experiment_file(path: Path) -> _ExperimentFile:
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


@attrs.frozen
class _ModelEntry:
    """One model before its spec is resolved: its name, its own keys and their lines."""

    name: str
    values: dict[str, Any]
    key_lines: dict[str, int]
    line: int | None


def _entry(located: _Located, source: str) -> _ModelEntry:
    if isinstance(located.value, str):
        return _ModelEntry(located.value, {PRESET_KEY: located.value}, {}, located.line)
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
    return _ModelEntry(str(name), values, lines, located.line)


def _unknown_model(name: str, defined: Sequence[str]) -> ExperimentError:
    extra = f"; models defined in the experiment file: {', '.join(defined)}" if defined else ""
    return ExperimentError(
        f"unknown model {short_repr(name)}{_suggest(name, [*PRESETS, *defined])}; available "
        f"presets: {', '.join(PRESETS)}{extra}"
    )


def _chosen_entries(
    file_entries: list[_ModelEntry] | None, names: Sequence[str] | None
) -> list[_ModelEntry]:
    """The file's models, or the ones named by --models (file models first, then presets)."""
    if not names:
        if file_entries is not None:
            return file_entries
        names = DEFAULT_MODELS
    defined = {e.name: e for e in file_entries or []}
    chosen = []
    for name in names:
        if name in defined:
            chosen.append(defined[name])
        elif name in PRESETS:
            chosen.append(_ModelEntry(name, {PRESET_KEY: name}, {}, None))
        else:
            raise _unknown_model(name, list(defined))
    return chosen


def _check_unique(entries: Sequence[_ModelEntry], source: str) -> None:
    seen: dict[str, _ModelEntry] = {}
    for entry in entries:
        if entry.name in seen:
            first = seen[entry.name].line
            first_at = f" (first at line {first})" if first is not None else ""
            raise ExperimentError(
                f"{where(source, entry.line)}: model name {short_repr(entry.name)} appears "
                f"twice{first_at}; give each model its own 'name'"
            )
        seen[entry.name] = entry


def parse_assignments(assignments: Sequence[str]) -> dict[str, Any]:
    """`KEY=VALUE` texts (from --set) as a mapping; values are read as YAML, as in files."""
    try:
        return parse_spec_assignments(assignments)
    except SpecError as error:
        raise ExperimentError(str(error)) from None


# ---------------------------------------------------------------------------------------------
# The reader.


def _top_value(file: _ExperimentFile, flags: Mapping[str, Any], key: str) -> tuple[Any, bool]:
    """(value, from a flag?) of a top-level setting; (None, False) when neither gives it."""
    if flags.get(key) is not None:
        return flags[key], True
    return file.values.get(key), False


def _check_epochs(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ExperimentError(
            f"{where}: experiment key 'epochs' = {short_repr(value)} is invalid: must be an "
            "integer >= 1"
        )
    return value


def _resolve_spec(
    entry: _ModelEntry,
    file: _ExperimentFile,
    flags: Mapping[str, Any],
    assignments: Mapping[str, Any],
) -> ModelPlan:
    values: dict[str, Any] = {"max_epochs": DEFAULT_EPOCHS}
    lines: dict[str, int] = {}
    values.update(file.overrides.value)
    lines.update(file.overrides.key_lines)
    for key, field in (("epochs", "max_epochs"), ("seed", "seed")):
        if key in file.values:
            values[field] = file.values[key]
            lines[field] = file.key_lines[key]
    values.update(entry.values)
    lines.update(entry.key_lines)
    if entry.line is not None and PRESET_KEY in values:
        lines.setdefault(PRESET_KEY, entry.line)
    for key, field in (("epochs", "max_epochs"), ("seed", "seed")):
        if flags.get(key) is not None:
            values[field] = flags[key]
            lines.pop(field, None)
    values.update(assignments)
    for key in assignments:
        lines.pop(key, None)
    flag_fields = {key: f"--set {key}={short_repr(assignments[key])}" for key in assignments}
    for key, field in (("epochs", "max_epochs"), ("seed", "seed")):
        if flags.get(key) is not None and field not in flag_fields:
            flag_fields[field] = f"--{key} {flags[key]}"
    try:
        spec = spec_from_mapping(values, file.source, lines)
    except SpecError as error:
        raise _relocated(error, file.source, entry.name, lines, flag_fields) from None
    return ModelPlan(entry.name, spec)


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
    """Resolves experiments from YAML files and command-line flags (an ExperimentReader)."""

    def resolve(self, path: Path | None, flags: Mapping[str, Any]) -> Experiment:
        """The experiment of `path` (None: the defaults) with the non-None `flags` over it.

        Flags: models (names), epochs, seed, dataset, num_samples, num_labeled, num_test,
        sampling, out, and set (KEY=VALUE texts applied to every model).
        """
        file = (
            read_experiment_file(path)
            if path is not None
            else _ExperimentFile(COMMAND_LINE, {}, {}, None, _Located({}))
        )
        if "epochs" in file.values:
            _check_epochs(file.values["epochs"], where(file.source, file.key_lines["epochs"]))
        file_entries = (
            [_entry(e, file.source) for e in file.models] if file.models is not None else None
        )
        entries = _chosen_entries(file_entries, flags.get("models"))
        _check_unique(entries, file.source)
        assignments = parse_assignments(flags.get("set") or ())
        plans = [_resolve_spec(e, file, flags, assignments) for e in entries]
        settings: dict[str, Any] = {}
        from_flag: set[str] = set()
        for key in SETTING_KEYS:
            value, flagged = _top_value(file, flags, key)
            if value is not None:
                settings[key] = value
                if flagged:
                    from_flag.add(key)
        any_flag = bool(from_flag) or any(flags.get(k) for k in ("models", "epochs", "seed", "set"))
        source = f"{file.source} with command-line flags" if path and any_flag else file.source
        try:
            return Experiment(models=tuple(plans), source=source, **settings)
        except ExperimentError as error:
            raise self._located(error, file, from_flag) from None

    @staticmethod
    def _located(error: ExperimentError, file: _ExperimentFile, from_flag: set[str]) -> Exception:
        """`error` prefixed with the file and line of the first key it names (not a flag's)."""
        message = str(error)
        for key in re.findall(r"'([a-z_]+)'", message):
            if key in file.key_lines and key not in from_flag:
                return ExperimentError(f"{where(file.source, file.key_lines[key])}: {message}")
        return error
