"""The dashboard's server-wide state through the real container, with fake data and models.

Workspaces and labels are real files in a temporary folder (the same stores the CLI uses); the
data source, the model repository and the generator are in-memory fakes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fakes import FakeModelGenerator, InMemoryDataSource, InMemoryModelRepository

from ssvae.application.bootstrap import bootstrap
from ssvae.application.settings import AppSettings, DataSettings
from ssvae.domain.errors import SpecError
from ssvae.domain.labels import ClassVocabulary
from ssvae.domain.spec import PRESETS, TEXT_PRESET_VALUES
from ssvae.domain.workspace import WorkspaceError
from ssvae.entrypoints.dashboard.viewmodels.hub import LAYING_OUT, UNTRAINED_MAP, DashboardHub
from ssvae.entrypoints.dashboard.viewmodels.map import CLASS_VIEW, LATENT_VIEW
from ssvae.entrypoints.dashboard.viewmodels.training import FAILED, FINISHED

VOCABULARY = ClassVocabulary.digits(3)
N = 30


def _app_factory() -> Any:
    """Builds containers on one set of fakes: the data, the models' checkpoints."""
    rng = np.random.default_rng(0)
    y = np.arange(N) % 3
    x = (rng.random((N, 4)) * 0.1 + y[:, None]).astype(np.float32)
    source = InMemoryDataSource(VOCABULARY, x, y, x[:12], y[:12])
    checkpoints: dict[Path, dict[str, Any]] = {}

    def make_app(settings: AppSettings) -> Any:
        app = bootstrap(settings)
        repository = InMemoryModelRepository(callbacks=[app.training_relay()])
        repository.checkpoints = checkpoints  # one "disk" for every container
        app.data_source.override(source)
        app.model_repository.override(repository)
        app.model_generator.override(FakeModelGenerator())
        return app

    return make_app


def _hub(tmp_path: Path) -> DashboardHub:
    return DashboardHub(AppSettings(artifacts_dir=tmp_path / "artifacts"), _app_factory())


def test_the_landing_page_lists_what_it_creates(tmp_path: Path) -> None:
    hub = _hub(tmp_path)
    assert hub.catalog() == []
    assert "mixture_k10" in hub.presets
    workspace = hub.create("mixture_k5", "first", num_samples=20)
    assert workspace.directory == tmp_path / "artifacts" / "models" / "first"
    (summary,) = hub.catalog()
    assert (summary.id, summary.preset, summary.pool_size, summary.rounds) == (
        "first",
        "mixture_k5",
        20,
        0,
    )
    with pytest.raises(WorkspaceError, match="already exists"):
        hub.create("standard", "first")


def test_the_start_page_offers_the_default_preset_for_the_servers_data_first(
    tmp_path: Path,
) -> None:
    image = _hub(tmp_path).presets
    text_settings = AppSettings(
        data=DataSettings(kind="text", name="loghub", task="system"),
        artifacts_dir=tmp_path / "artifacts",
    )
    text = DashboardHub(text_settings, bootstrap).presets
    assert image[0] == "mixture_k10" and text[0] == "text_mixture_k20"
    assert sorted(image) == sorted(text) == sorted(PRESETS)
    assert set(text[: len(TEXT_PRESET_VALUES)]) == set(TEXT_PRESET_VALUES)
    assert not set(image[: len(PRESETS) - len(TEXT_PRESET_VALUES)]) & set(TEXT_PRESET_VALUES)


@pytest.mark.parametrize("model_id", ["../first", "..", "a/b", "/etc", "", "x" * 65, "a b"])
def test_no_model_id_reaches_outside_the_models_folder(tmp_path: Path, model_id: str) -> None:
    hub = _hub(tmp_path)
    hub.create("standard", "first")
    (tmp_path / "artifacts" / "secret").mkdir()
    with pytest.raises(WorkspaceError, match="is invalid"):
        hub.open(model_id)
    with pytest.raises(WorkspaceError, match="is invalid"):
        hub.create("standard", model_id)


def test_an_unknown_model_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match=r"no model 'ghost'.*create one"):
        _hub(tmp_path).open("ghost")


def test_labels_training_and_refresh_go_through_the_cli_services(tmp_path: Path) -> None:
    hub = _hub(tmp_path)
    hub.create("mixture_k5", "m")
    model = hub.open("m")
    assert hub.open("m") is model  # one open model per workspace, shared by sessions
    before = model.pool_map()
    assert len(before) == N
    board = model.board()
    board.assign([0, 3], "0")
    board.press(1, "1")
    labels_file = tmp_path / "artifacts" / "models" / "m" / "labels.csv"
    assert labels_file.read_text().splitlines() == ["Serial,label", "0,0", "1,1", "3,0"]
    model.job.start(2)
    assert model.job.wait(20)
    progress = model.job.progress()
    assert progress.state == FINISHED, progress.message
    assert progress.finished_runs == 1 and len(progress.epoch_metrics) == 2
    assert model.workspace.has_model
    after = model.pool_map()
    assert after is not before  # new predictions for the new round
    # The fake model is a nearest-centroid classifier on the labels it was trained with.
    assert after.predicted[[0, 1, 3]].tolist() == [0, 1, 0]
    overview = model.overview()
    (run,) = overview.runs
    assert (run.round, run.labels, run.epochs) == (1, 3, 2)
    assert run.test_accuracy is not None and 0.0 <= run.test_accuracy <= 1.0
    assert overview.counts == {"0": 2, "1": 1, "2": 0}
    assert ("prior", "'mixture'", "prior on z: standard, mixture, vamp") in overview.spec


def test_hyperparameters_apply_to_the_first_run_and_are_refused_after(tmp_path: Path) -> None:
    hub = _hub(tmp_path)
    hub.create("standard", "m")
    model = hub.open("m")
    model.job.start(1, {"learning_rate": 0.01})
    assert model.job.wait(20)
    assert model.job.progress().state == FINISHED
    assert model.model().spec.optimiser.learning_rate == 0.01
    model.job.start(1, {"learning_rate": 0.02})
    assert model.job.wait(20)
    progress = model.job.progress()
    assert progress.state == FAILED
    assert "fixed once a model is trained" in progress.message
    assert len(model.workspace.metadata.rounds) == 1  # the workspace is as it was


def test_clone_copies_spec_pool_and_labels_and_yaml_errors_name_the_line(tmp_path: Path) -> None:
    hub = _hub(tmp_path)
    hub.create("mixture_k5", "m", num_samples=20)
    source = hub.open("m")
    source.board().assign([2, 5], "2")
    clone = hub.clone(source, "m-copy")
    assert clone.spec == hub.open("m").workspace.spec
    assert clone.metadata.pool_size == 20
    assert dict(hub.open("m-copy").labels().labels()) == {2: "2", 5: "2"}
    made = hub.create_from_yaml("standard", "latent_dim: 3\nbatch_size: 7\n", "mine.yaml", "y")
    assert (
        made.spec.network.latent_dim,
        made.spec.training.batch_size,
        made.spec.network.prior,
    ) == (3, 7, "standard")
    with pytest.raises(SpecError, match=r"mine\.yaml:2: .*learning_rate"):
        hub.create_from_yaml("standard", "latent_dim: 3\nlearning_rate: -2\n", "mine.yaml")


def test_the_dashboard_accepts_labels_for_the_pool_only_as_the_cli_does(tmp_path: Path) -> None:
    from ssvae.application.bootstrap import open_workspace
    from ssvae.domain.errors import SsvaeError

    make_app = _app_factory()
    hub = DashboardHub(AppSettings(artifacts_dir=tmp_path / "artifacts"), make_app)
    created = hub.create("standard", "m", num_samples=N // 3)
    model = hub.open("m")
    pool = model.pool().serials
    outside = int(np.setdiff1d(np.arange(N), pool)[0])  # a train serial the pool left out
    cli = open_workspace(created.directory, tmp_path / "artifacts", make_app).app.label_service()
    for service in (model.labels(), cli):
        with pytest.raises(SsvaeError, match=f"serial {outside} is not in the dataset") as error:
            service.set([outside], "0", "test")
        assert "\n" not in str(error.value)
        service.set([int(pool[0])], "0", "test")  # a pool serial is accepted
    labels = model.labels().labels()
    assert outside not in labels and int(pool[0]) in labels  # only the pool serial was written


def test_the_catalog_leaves_out_folders_that_are_no_complete_workspace(tmp_path: Path) -> None:
    hub = _hub(tmp_path)
    hub.create("standard", "good", num_samples=10)
    (hub.models_dir / "empty").mkdir()
    damaged = hub.models_dir / "damaged"
    damaged.mkdir()
    (damaged / "metadata.json").write_text("{not json")
    (hub.models_dir / "stray.txt").write_text("")
    assert [summary.id for summary in hub.catalog()] == ["good"]
    with pytest.raises(WorkspaceError, match=r"spec\.yaml is missing"):
        hub.open("damaged")  # opening it says what is wrong


def _wait_for_layout(model: Any, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not model.layout_ready() and time.monotonic() < deadline:
        assert model.layout_note() in ("", LAYING_OUT), model.layout_note()
        time.sleep(0.05)


def test_the_map_shows_the_latent_until_the_class_map_is_laid_out_off_the_page(
    tmp_path: Path,
) -> None:
    hub = _hub(tmp_path)
    hub.create("mixture_k5", "m")
    model = hub.open("m")
    model.warm()
    assert model.pool_map().view == LATENT_VIEW and model.layout_note() == UNTRAINED_MAP
    assert not model.layout_ready()
    model.board().assign([0, 3, 4], "0")
    model.board().assign([1, 2, 5], "1")
    model.job.start(1)
    assert model.job.wait(20) and model.job.progress().state == FINISHED
    _wait_for_layout(model)
    assert model.layout_ready() and model.layout_note() == ""
    drawn = model.pool_map()
    assert drawn.view == CLASS_VIEW
    # The map drawn is the workspace's cached map, the one `ssvae map` writes.
    cached = model.services.maps.positions(model.workspace)
    rows = drawn.rows_of(cached.serials)
    np.testing.assert_array_equal(drawn.xy[rows], cached.positions)
    assert drawn.latent_xy is not None and not np.array_equal(drawn.latent_xy, drawn.xy)
