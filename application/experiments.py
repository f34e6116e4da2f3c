"""Use case: the experiment that `ssvae compare` runs, from an experiment file and the flags.

The reader only reads the file and builds specs; which value wins is decided here, once.
Precedence for a model's spec, lowest first: the preset, the file's `overrides`, its `epochs`
and `seed`, the model's own keys, then the flags (`--set` over `--epochs` and `--seed`). For
the experiment's settings (dataset, num_samples, ...), a flag wins over the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from ssvae.domain.comparison import (
    DEFAULT_MODELS,
    EXPERIMENT_SETTINGS,
    PRESET_KEY,
    Experiment,
    ExperimentError,
    ExperimentFile,
    ExperimentReader,
    ModelEntry,
    ModelPlan,
    did_you_mean,
)
from ssvae.domain.echo import short_repr
from ssvae.domain.spec import PRESETS

DEFAULT_EPOCHS = 10  # a comparison's max_epochs unless the file or a flag says otherwise
COMMAND_LINE = "command line"
# The flags that set a field of every model's spec: flag name -> spec field.
SPEC_FLAGS: tuple[tuple[str, str], ...] = (("epochs", "max_epochs"), ("seed", "seed"))


def _unknown_model(name: str, defined: Sequence[str]) -> ExperimentError:
    extra = f"; models defined in the experiment file: {', '.join(defined)}" if defined else ""
    return ExperimentError(
        f"unknown model {short_repr(name)}{did_you_mean(name, [*PRESETS, *defined])}; available "
        f"presets: {', '.join(PRESETS)}{extra}"
    )


def _chosen_entries(
    file_entries: Sequence[ModelEntry] | None, names: Sequence[str] | None
) -> list[ModelEntry]:
    """The file's models, or the ones named by --models (file models first, then presets)."""
    if not names:
        if file_entries is not None:
            return list(file_entries)
        names = DEFAULT_MODELS
    defined = {e.name: e for e in file_entries or []}
    chosen = []
    for name in names:
        if name in defined:
            chosen.append(defined[name])
        elif name in PRESETS:
            chosen.append(ModelEntry(name, {PRESET_KEY: name}))
        else:
            raise _unknown_model(name, list(defined))
    return chosen


def _check_unique(entries: Sequence[ModelEntry], file: ExperimentFile) -> None:
    seen: dict[str, ModelEntry] = {}
    for entry in entries:
        if entry.name in seen:
            first = seen[entry.name].line
            first_at = f" (first at line {first})" if first is not None else ""
            raise ExperimentError(
                f"{file.where(entry.line)}: model name {short_repr(entry.name)} appears "
                f"twice{first_at}; give each model its own 'name'"
            )
        seen[entry.name] = entry


def _merged(
    entry: ModelEntry,
    file: ExperimentFile,
    flags: Mapping[str, Any],
    assignments: Mapping[str, Any],
) -> tuple[ModelEntry, dict[str, str]]:
    """The model with every value in its final place, and the flag behind each flagged field."""
    values: dict[str, Any] = {"max_epochs": DEFAULT_EPOCHS, **file.overrides}
    lines: dict[str, int] = dict(file.override_lines)
    for key, field in SPEC_FLAGS:
        if key in file.values:
            values[field] = file.values[key]
            lines[field] = file.key_lines[key]
    values.update(entry.values)
    lines.update(entry.key_lines)
    flag_fields = {key: f"--set {key}={short_repr(value)}" for key, value in assignments.items()}
    for key, field in SPEC_FLAGS:
        if flags.get(key) is not None:
            values[field] = flags[key]
            flag_fields.setdefault(field, f"--{key} {flags[key]}")
    values.update(assignments)
    for field in flag_fields:
        lines.pop(field, None)
    return ModelEntry(entry.name, values, lines, entry.line), flag_fields


def _located(error: ExperimentError, file: ExperimentFile, from_flag: set[str]) -> Exception:
    """`error` prefixed with the file and line of the first key it names (not a flag's)."""
    message = str(error)
    for key in re.findall(r"'([a-z_]+)'", message):
        if key in file.key_lines and key not in from_flag:
            return ExperimentError(f"{file.where(file.key_lines[key])}: {message}")
    return error


@attrs.frozen
class ExperimentResolver:
    """Resolves the experiment of an optional file with the command-line flags over it."""

    reader: ExperimentReader

    def resolve(self, path: Path | None, flags: Mapping[str, Any]) -> Experiment:
        """The experiment of `path` (None: the defaults) with the non-None `flags` over it.

        Flags: models (names), epochs, seed, dataset, num_samples, num_labeled, num_test,
        sampling, out, and set (KEY=VALUE texts applied to every model).
        """
        file = self.reader.read(path) if path is not None else ExperimentFile(COMMAND_LINE)
        entries = _chosen_entries(file.models, flags.get("models"))
        _check_unique(entries, file)
        assignments = self.reader.parse_assignments(flags.get("set") or ())
        plans = []
        for entry in entries:
            model, flag_fields = _merged(entry, file, flags, assignments)
            plans.append(ModelPlan(model.name, self.reader.spec(model, file, flag_fields)))
        settings: dict[str, Any] = {}
        from_flag: set[str] = set()
        for key in EXPERIMENT_SETTINGS:
            if flags.get(key) is not None:
                settings[key] = flags[key]
                from_flag.add(key)
            elif file.values.get(key) is not None:
                settings[key] = file.values[key]
        any_flag = bool(from_flag) or any(flags.get(k) for k in ("models", "epochs", "seed", "set"))
        source = f"{file.source} with command-line flags" if path and any_flag else file.source
        try:
            return Experiment(models=tuple(plans), source=source, **settings)
        except ExperimentError as error:
            raise _located(error, file, from_flag) from None
