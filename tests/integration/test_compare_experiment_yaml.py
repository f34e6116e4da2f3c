"""Experiment files: models, settings, precedence (flags win), and errors that name the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ssvae.adapters.yaml.experiment import YamlExperimentReader
from ssvae.application.experiments import ExperimentResolver
from ssvae.domain.comparison import ExperimentError
from ssvae.domain.errors import SpecError, SsvaeError
from ssvae.domain.spec import preset

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "comparisons"
READER = ExperimentResolver(YamlExperimentReader())


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def resolve(path: Path | None, **flags: Any) -> Any:
    return READER.resolve(path, flags)


def test_defaults_without_a_file() -> None:
    experiment = resolve(None)
    assert [p.name for p in experiment.models] == ["standard", "mixture_k10"]
    assert (experiment.num_samples, experiment.num_labeled, experiment.dataset) == (
        5000,
        50,
        "mnist",
    )
    assert experiment.models[1].spec == preset("mixture_k10", max_epochs=10)
    assert experiment.source == "command line"


def test_flags_reach_every_model() -> None:
    experiment = resolve(
        None,
        models=("mixture_k5", "vamp_k10"),
        epochs=3,
        seed=7,
        num_samples=300,
        num_labeled=20,
        dataset="fashion_mnist",
        out="somewhere",
        set=("batch_size=16", "learning_rate=3e-4", "hidden_sizes=[64, 32]"),
    )
    assert [p.name for p in experiment.models] == ["mixture_k5", "vamp_k10"]
    for plan in experiment.models:
        assert plan.spec.training.max_epochs == 3 and plan.spec.training.seed == 7
        assert plan.spec.training.batch_size == 16 and plan.spec.optimiser.learning_rate == 3e-4
        assert plan.spec.network.hidden_sizes == (64, 32)
    assert (experiment.num_samples, experiment.num_labeled, experiment.seed) == (300, 20, 7)
    assert (experiment.dataset, experiment.out) == ("fashion_mnist", "somewhere")


def test_a_file_with_presets_overrides_and_named_models(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
models:
  - standard
  - preset: mixture_k10
    name: small
    latent_dim: 2
    max_epochs: 4
  - preset: vamp_k10
    hidden_sizes: [64]
num_samples: 1000
num_labeled: 30
sampling: random
epochs: 6
seed: 3
overrides:
  batch_size: 64
  latent_dim: 8
""",
    )
    experiment = resolve(path)
    standard, small, vamp = experiment.models
    assert (standard.name, small.name, vamp.name) == (
        "standard",
        "small",
        "vamp_k10_hidden_sizes-64",
    )
    # overrides < epochs/seed < the model's own keys
    assert (standard.spec.training.batch_size, standard.spec.network.latent_dim) == (64, 8)
    assert (standard.spec.training.max_epochs, standard.spec.training.seed) == (6, 3)
    assert (small.spec.network.latent_dim, small.spec.training.max_epochs) == (2, 4)
    assert small.spec.network.prior == "mixture" and small.spec.network.num_components == 10
    assert vamp.spec.network.hidden_sizes == (64,)
    assert (experiment.num_samples, experiment.sampling, experiment.seed) == (1000, "random", 3)
    assert experiment.source == str(path)


def test_flags_win_over_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
models:
  - preset: mixture_k10
    name: mine
    max_epochs: 4
    seed: 1
num_samples: 1000
epochs: 6
""",
    )
    experiment = resolve(path, epochs=2, seed=9, num_samples=200, set=("max_epochs=5",))
    (plan,) = experiment.models
    assert plan.spec.training.max_epochs == 5  # --set is applied last
    assert plan.spec.training.seed == 9
    assert experiment.num_samples == 200
    assert experiment.source == f"{path} with command-line flags"
    # --models picks the file's named models and presets alike.
    chosen = resolve(path, models=("mine", "standard"))
    assert [p.name for p in chosen.models] == ["mine", "standard"]
    assert chosen.models[1].spec.training.max_epochs == 6  # the file's epochs apply to presets too


def test_unknown_model_name_lists_the_presets(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError) as error:
        resolve(None, models=("mixture_k11",))
    message = str(error.value)
    assert "unknown model 'mixture_k11'" in message
    assert "(did you mean 'mixture_k10' or 'mixture_k5'?); available presets" in message
    assert "available presets: standard, mixture_k5, mixture_k10, mixture_k20, vamp_k10" in message
    path = write(tmp_path, "models:\n  - preset: standard\n    name: mine\n")
    with pytest.raises(ExperimentError, match="models defined in the experiment file: mine"):
        resolve(path, models=("theirs",))


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (
            "num_samples: 100\nepoch: 3\n",
            2,
            "unknown experiment key 'epoch' (did you mean 'epochs'?); known keys",
        ),
        ("models:\n  - standard\n  - mixture_k11\n", 3, "unknown model preset 'mixture_k11'"),
        ("models:\n  - preset: standard\n    latent_dims: 4\n", 3, "'latent_dims'"),
        ("models:\n  - preset: standard\n    latent_dim: -4\n", 3, "'latent_dim' = -4"),
        ("models:\n  - standard\n  - 12\n", 3, "model entry 12 is invalid"),
        ("models: []\n", 1, "'models' is empty"),
        ("models: standard\n", 1, "'models' must be a list"),
        ("seed: 1\nnum_samples: many\n", 2, "'num_samples' = 'many'"),
        ("num_samples: 10\nnum_labeled: 20\n", 2, "num_labeled must be at most num_samples"),
        ("sampling: best\n", 1, "'sampling' = 'best'"),
        ("epochs: 0\n", 1, "'epochs' = 0"),
        ("overrides:\n  batch_size: 0\n", 2, "'batch_size' = 0"),
        ("overrides:\n  batchsize: 8\n", 2, "'batchsize'"),
        ("overrides: 3\n", 1, "'overrides' must be a mapping"),
        ("epochs: 2\nepochs: 3\n", 2, "appears twice"),
        ("models:\n  - preset: standard\n    name: a/b\n", 3, "model name 'a/b' is invalid"),
        ("models:\n  - standard\n  - standard\n", 3, "'standard' appears twice (first at line 2)"),
        ("models:\n  - [standard\n", 3, "invalid YAML"),
        ("- standard\n", 1, "must be a mapping"),
        ("seed: 1\nepochs: 2\noverrides:\n  prior: mixture\n", 4, "'num_components'"),
    ],
)
def test_bad_keys_and_values_name_themselves_and_their_line(
    tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SsvaeError) as error:
        resolve(path)
    message = str(error.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert fragment in message, message


def test_an_error_in_a_flag_names_no_line_of_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "overrides:\n  batch_size: 32\n")
    with pytest.raises(SpecError) as error:
        resolve(path, set=("batch_size=zero",))
    assert str(error.value).startswith("--set batch_size='zero': model spec field 'batch_size'")
    with pytest.raises(SpecError, match=r"^--set batchsize=8: unknown model spec key"):
        resolve(path, set=("batchsize=8",))
    with pytest.raises(SpecError, match=r"^--seed -1: model spec field 'seed' = -1"):
        resolve(path, seed=-1)
    with pytest.raises(ExperimentError, match="write KEY=VALUE"):
        resolve(None, set=("batch_size",))


def test_a_missing_file_says_where_examples_are(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match=r"does not exist.*configs/comparisons"):
        resolve(tmp_path / "nope.yaml")


def test_an_empty_file_means_the_defaults(tmp_path: Path) -> None:
    assert resolve(write(tmp_path, "# nothing\n")).models == resolve(None).models


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_experiment_files_resolve_and_document_themselves(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# "), "each experiment file starts with a comment saying what it is"
    experiment = resolve(path)
    assert len(experiment.models) >= 2
    assert experiment.dataset == "mnist"


def test_the_shipped_files_cover_the_issue(tmp_path: Path) -> None:
    names = {p.stem for p in CONFIGS.glob("*.yaml")}
    assert {"standard_vs_mixture", "latent_sizes", "likelihoods", "priors"} <= names
    priors = {p.spec.network.prior for p in resolve(CONFIGS / "priors.yaml").models}
    assert priors == {"standard", "mixture", "vamp"}
    likelihoods = {p.spec.network.likelihood for p in resolve(CONFIGS / "likelihoods.yaml").models}
    assert likelihoods == {"bernoulli", "gaussian", "heteroscedastic"}
