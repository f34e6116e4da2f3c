"""`ssvae compare` in-process: every flag reaches the trained model, and the files are written.

The real container, experiment reader and report writer run; only the data source, the model
repository and the generator are in-memory fakes swapped in through the container.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
from click.testing import CliRunner
from fakes import FakeModelGenerator, FakeModelRepository, InMemoryDataSource

import ssvae.application.bootstrap as bootstrap_module
from ssvae.domain.labels import ClassVocabulary
from ssvae.domain.spec import ModelSpec
from ssvae.entrypoints.cli.compare import ProgressBar
from ssvae.entrypoints.cli.main import main
from ssvae.entrypoints.cli.options import expand_multi_value_options

VOCAB = ClassVocabulary(("a", "b", "c"))


class Wiring:
    """Patches `bootstrap` so the CLI's container uses fakes; remembers what it built."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, **repository_options: Any) -> None:
        self.containers: list[Any] = []
        self.repositories: list[FakeModelRepository] = []
        self.options = repository_options
        original = bootstrap_module.bootstrap

        def bootstrap(settings: Any = None) -> Any:
            container = original(settings)
            self.containers.append(container)
            rng = np.random.default_rng(0)
            y = np.arange(120, dtype=np.int64) % 3
            x = rng.random((120, 4, 4, 1), dtype=np.float32) * 0.3
            x[np.arange(120), y, :, 0] += 0.7
            container.data_source.override(
                InMemoryDataSource(VOCAB, x[:90], y[:90], x[90:], y[90:])
            )
            repository = FakeModelRepository([container.training_relay()], **self.options)
            self.repositories.append(repository)
            container.model_repository.override(repository)
            container.model_generator.override(FakeModelGenerator())
            return container

        monkeypatch.setattr(bootstrap_module, "bootstrap", bootstrap)

    @property
    def models(self) -> list[Any]:
        return [m for r in self.repositories for m in r.created]


def invoke(tmp_path: Path, *args: str) -> Any:
    return CliRunner().invoke(main, ["compare", "--out", str(tmp_path / "out"), *args])


def run_folder(tmp_path: Path) -> Path:
    (folder,) = (tmp_path / "out").iterdir()
    return folder


def test_every_option_reaches_the_trained_models(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wiring = Wiring(monkeypatch)
    result = invoke(
        tmp_path,
        "--models",
        "standard",
        "mixture_k5",
        "--epochs",
        "3",
        "--num-samples",
        "60",
        "--num-labeled",
        "12",
        "--num-test",
        "15",
        "--seed",
        "4",
        "--dataset",
        "fashion_mnist",
        "--set",
        "batch_size=16",
    )
    assert result.exit_code == 0, result.output
    standard, mixture = wiring.models
    for model in (standard, mixture):
        # --epochs 3 trains exactly 3 epochs (the fake never stops early unless told).
        assert model.fit_calls == [(60, 12, 3)] and model.epochs_trained == 3
        assert model.spec.training.max_epochs == 3 and model.spec.training.seed == 4
        assert model.spec.training.batch_size == 16
    assert (standard.spec.network.prior, mixture.spec.network.num_components) == ("standard", 5)
    assert wiring.containers[-1].config.data.name() == "fashion_mnist"
    summary = json.loads((run_folder(tmp_path) / "summary.json").read_text())
    assert summary["experiment"]["seed"] == 4
    assert summary["data"]["test_samples"] == 15
    assert [m["epochs_run"] for m in summary["models"]] == [3, 3]
    assert "report: " in result.output


def test_a_yaml_file_and_flags_combine_with_flags_winning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wiring = Wiring(monkeypatch)
    config = tmp_path / "experiment.yaml"
    config.write_text(
        "models:\n  - preset: mixture_k10\n    name: small\n    latent_dim: 2\n  - standard\n"
        "num_samples: 45\nnum_labeled: 6\nepochs: 5\nseed: 2\n"
    )
    result = invoke(tmp_path, "--config", str(config), "--epochs", "2", "--num-labeled", "9")
    assert result.exit_code == 0, result.output
    small, standard = wiring.models
    assert small.fit_calls == [(45, 9, 2)] and standard.fit_calls == [(45, 9, 2)]
    assert small.spec.network.latent_dim == 2 and small.spec.training.seed == 2


def test_models_also_take_commas_and_repeated_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wiring = Wiring(monkeypatch)
    result = invoke(
        tmp_path,
        "--models=standard,mixture_k5",
        "--models",
        "vamp_k10",
        "--epochs",
        "1",
        "--num-samples",
        "30",
        "--num-labeled",
        "3",
    )
    assert result.exit_code == 0, result.output
    assert [m.spec.network.prior for m in wiring.models] == ["standard", "mixture", "vamp"]


def test_ctrl_c_writes_the_report_and_exits_130(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    Wiring(monkeypatch, interrupt_at={1: 1})
    result = invoke(
        tmp_path,
        "--models",
        "standard",
        "mixture_k5",
        "--epochs",
        "2",
        "--num-samples",
        "30",
        "--num-labeled",
        "3",
    )
    assert result.exit_code == 130
    assert "interrupted: partial report written to" in result.output
    summary = json.loads((run_folder(tmp_path) / "summary.json").read_text())
    assert [m["status"] for m in summary["models"]] == ["finished", "interrupted"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--models", "nope"], "available presets: standard, mixture_k5"),
        (["--models", "--epochs", "3"], "--models needs at least one value"),
        (["--epochs", "0"], "--epochs"),
        (["--num-labeled", "100", "--num-samples", "50"], "num_labeled must be at most"),
        (["--dataset", "cifar"], "dataset 'cifar' is unknown"),
        (["--set", "latent_dim=-1"], "--set latent_dim=-1"),
        (["--config", "missing.yaml"], "missing.yaml does not exist"),
    ],
)
def test_bad_input_is_one_line_saying_what_to_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str], message: str
) -> None:
    wiring = Wiring(monkeypatch)
    result = invoke(tmp_path, *args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert wiring.models == []


def test_multi_value_expansion() -> None:
    names = ("--models",)
    assert expand_multi_value_options(["--models", "a", "b", "--epochs", "3"], names) == [
        "--models",
        "a",
        "--models",
        "b",
        "--epochs",
        "3",
    ]
    assert expand_multi_value_options(["--epochs", "3", "--models", "a"], names) == [
        "--epochs",
        "3",
        "--models",
        "a",
    ]
    assert expand_multi_value_options(["--models=a,b", "--models", "c"], names) == [
        "--models=a,b",
        "--models",
        "c",
    ]
    assert expand_multi_value_options(["--models", "a", "--", "b"], names) == [
        "--models",
        "a",
        "--",
        "b",
    ]
    with pytest.raises(click.UsageError, match="at least one value"):
        expand_multi_value_options(["--models"], names)


class Plan:
    def __init__(self, name: str, epochs: int) -> None:
        self.name = name
        self.spec = ModelSpec.from_fields(max_epochs=epochs)


class Record:
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.metrics = {"loss": 1.0}


def test_one_progress_bar_counts_epochs_across_models(tmp_path: Path) -> None:
    stream = (tmp_path / "log").open("w+")
    bar = ProgressBar([Plan("a", 2), Plan("b", 4)], stream=stream)
    bar.model_started(0, Plan("a", 2))
    bar.epoch_finished(Record(1))
    bar.epoch_finished(Record(2))  # a finishes: 2 of 6 epochs
    bar.model_finished(type("Outcome", (), {"evaluation": None, "message": "", "name": "a"})())
    bar.model_started(1, Plan("b", 4))
    bar.epoch_finished(Record(1))  # 3 of 6
    stream.seek(0)
    lines = stream.read().splitlines()
    assert [line.split("]")[1].split("%")[0].strip() for line in lines] == ["17", "33", "50"]
    assert "b (2/2) epoch 1/4" in lines[-1]


def test_text_data_defaults_to_the_text_presets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wiring = Wiring(monkeypatch)
    flags = ("--epochs", "1", "--num-samples", "30", "--num-labeled", "3")
    result = invoke(tmp_path, "--dataset", "loghub", "--task", "system", *flags)
    assert result.exit_code == 0, result.output
    specs = [m.spec for m in wiring.models]
    assert [(s.network.likelihood, s.network.prior, s.network.num_components) for s in specs] == [
        ("gaussian", "standard", 1),
        ("gaussian", "mixture", 20),
    ]
    images = invoke(tmp_path, *flags)  # image data keeps the image presets
    assert images.exit_code == 0, images.output
    assert [m.spec.network.likelihood for m in wiring.models[2:]] == ["bernoulli", "bernoulli"]
