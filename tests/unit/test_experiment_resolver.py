"""ExperimentResolver: flags win over the experiment file, decided in the application.

The reader here is an in-memory one: it hands back a file as already read and builds specs
from the values it is given, so these tests see only the precedence rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from ssvae.application.experiments import DEFAULT_EPOCHS, ExperimentResolver
from ssvae.domain.comparison import ExperimentError, ExperimentFile, ModelEntry
from ssvae.domain.spec import ModelSpec, preset


class InMemoryExperimentReader:
    """An ExperimentReader over one file given whole; records what each spec was built from."""

    def __init__(self, file: ExperimentFile) -> None:
        self.file = file
        self.built: list[tuple[Mapping[str, Any], Mapping[str, str]]] = []

    def read(self, path: Path) -> ExperimentFile:
        return self.file

    def parse_assignments(self, assignments: Sequence[str]) -> dict[str, Any]:
        return {key: int(value) for key, _, value in (a.partition("=") for a in assignments)}

    def spec(
        self, model: ModelEntry, file: ExperimentFile, flag_fields: Mapping[str, str]
    ) -> ModelSpec:
        self.built.append((dict(model.values), dict(flag_fields)))
        values = dict(model.values)
        return preset(values.pop("preset"), **values)


FILE = ExperimentFile(
    source="e.yaml",
    values={"epochs": 5, "seed": 2, "num_samples": 40, "num_labeled": 4},
    key_lines={"epochs": 3, "seed": 4, "num_samples": 1, "num_labeled": 2},
    models=(ModelEntry("mine", {"preset": "standard", "latent_dim": 3}, {"latent_dim": 7}, 6),),
)


def test_the_file_gives_epochs_and_seed_below_the_models_own_keys() -> None:
    reader = InMemoryExperimentReader(FILE)
    experiment = ExperimentResolver(reader).resolve(Path("e.yaml"), {})
    (plan,) = experiment.models
    assert (
        plan.spec.training.max_epochs == 5
        and plan.spec.training.seed == 2
        and plan.spec.network.latent_dim == 3
    )
    assert experiment.num_samples == 40 and experiment.source == "e.yaml"
    assert reader.built[0][1] == {}  # no field came from a flag


def test_flags_win_over_the_file_and_set_wins_over_epochs() -> None:
    reader = InMemoryExperimentReader(FILE)
    flags = {"epochs": 3, "seed": 9, "num_samples": 60, "set": ("latent_dim=4",)}
    experiment = ExperimentResolver(reader).resolve(Path("e.yaml"), flags)
    (plan,) = experiment.models
    assert (
        plan.spec.training.max_epochs == 3
        and plan.spec.training.seed == 9
        and plan.spec.network.latent_dim == 4
    )
    assert experiment.num_samples == 60 and experiment.seed == 9
    assert experiment.source == "e.yaml with command-line flags"
    flag_fields = reader.built[0][1]
    assert flag_fields == {
        "latent_dim": "--set latent_dim=4",
        "max_epochs": "--epochs 3",
        "seed": "--seed 9",
    }
    over = ExperimentResolver(reader).resolve(
        Path("e.yaml"), {"epochs": 3, "set": ("max_epochs=8",)}
    )
    assert over.models[0].spec.training.max_epochs == 8


def test_without_a_file_the_default_models_train_the_default_epochs() -> None:
    experiment = ExperimentResolver(InMemoryExperimentReader(FILE)).resolve(None, {})
    assert experiment.source == "command line" and experiment.models
    assert {plan.spec.training.max_epochs for plan in experiment.models} == {DEFAULT_EPOCHS}


def test_a_setting_error_names_the_files_line_unless_a_flag_set_it() -> None:
    resolver = ExperimentResolver(InMemoryExperimentReader(FILE))
    with pytest.raises(ExperimentError, match=r"^e\.yaml:2: .*'num_labeled'"):
        resolver.resolve(Path("e.yaml"), {"num_samples": 3})
    # num_labeled came from a flag: the error points at num_samples, the file's key it names
    with pytest.raises(
        ExperimentError, match=r"^e\.yaml:1: experiment settings 'num_labeled' = 50"
    ):
        resolver.resolve(Path("e.yaml"), {"num_labeled": 50})
