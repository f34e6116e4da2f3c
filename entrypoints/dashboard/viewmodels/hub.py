"""What the dashboard server shares between browser sessions: the models folder, each open
model once (its services, pool, predictions and training run).

A model workspace is opened by `open_workspace`, the one way the CLI and library open one too,
so the dashboard calls exactly the services the CLI calls, on the same pool and labels. The hub
composes nothing itself: it lists, creates and clones workspaces through the workspace service.
Ids from a URL or a form go through `check_workspace_id` and must resolve inside the models
folder: no id can reach outside the artifacts folder.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.application.bootstrap import (
    AppFactory,
    WorkspaceServices,
    open_catalog,
    open_workspace,
)
from ssvae.application.labeling import LabelService
from ssvae.application.pool_scan import input_vectors, predict_chunks
from ssvae.application.settings import AppSettings
from ssvae.domain.comparison import GeneratedSamples
from ssvae.domain.data import DatasetInfo, Samples
from ssvae.domain.errors import SsvaeError
from ssvae.domain.maps import MapLayout
from ssvae.domain.model import SsvaeModel, TrainingCallback, TrainingReport
from ssvae.domain.spec import (
    DEFAULT_IMAGE_PRESET,
    DEFAULT_TEXT_PRESET,
    PRESETS,
    TEXT_PRESET_VALUES,
)
from ssvae.domain.text_examples import TextExamples
from ssvae.domain.workspace import (
    Workspace,
    WorkspaceError,
    check_workspace_id,
    inside,
)
from ssvae.entrypoints.dashboard.viewmodels.label import LabelBoard, with_vocabulary
from ssvae.entrypoints.dashboard.viewmodels.map import (
    DashboardError,
    PoolMap,
    build_pool_map,
    with_layout,
)
from ssvae.entrypoints.dashboard.viewmodels.model import (
    ModelOverview,
    accuracy,
    component_usage,
    run_records,
    spec_rows,
)
from ssvae.entrypoints.dashboard.viewmodels.text import PoolTexts, pool_examples
from ssvae.entrypoints.dashboard.viewmodels.training import TrainingJob, check_epochs

GENERATED_PER_CLASS = 4
DASHBOARD_SOURCE = "dashboard"
LAYING_OUT = "laying out the map… it groups the classes once ready; meanwhile the latent (PCA)"
UNTRAINED_MAP = (
    "the model is not trained yet: the map shows the latent (PCA); after a training run it "
    "groups the classes"
)


@attrs.frozen
class WorkspaceSummary:
    """One line of the landing page's list of models."""

    id: str
    preset: str
    dataset: str
    pool_size: int
    rounds: int
    created: str


class OpenModel:
    """One workspace as the dashboard serves it; thread-safe, shared by all sessions."""

    def __init__(self, workspace: Workspace, services: WorkspaceServices) -> None:
        self.services = services
        self._workspace = workspace
        self._lock = threading.RLock()
        self._pool: Samples | None = None
        self._model: SsvaeModel | None = None
        self._map: PoolMap | None = None
        self._map_rounds = -1
        # The class map of a round: laid out off the page's thread (a first layout of a large
        # pool takes tens of seconds), by round; the map is drawn from the latent meanwhile.
        self._layouts: dict[int, MapLayout] = {}
        self._layout_errors: dict[int, str] = {}
        self._laying_out: int | None = None
        self._map_has_layout = False
        self.info: DatasetInfo = services.info
        self.job = TrainingJob(self._train)
        self._test_accuracy: dict[int, float] = {}
        self._generated: dict[tuple[int, int, int], GeneratedSamples] = {}
        self._texts: PoolTexts | None = None
        self._examples: tuple[int, TextExamples] | None = None

    @property
    def workspace(self) -> Workspace:
        with self._lock:
            return self._workspace

    @property
    def id(self) -> str:
        return self.workspace.id

    def labels(self) -> LabelService:
        """The workspace's LabelService."""
        return self.services.labels

    def pool(self) -> Samples:
        """The workspace's pool samples (read once)."""
        with self._lock:
            if self._pool is None:
                self._pool = self.services.workspaces.pool(self._workspace)
            return self._pool

    def model(self) -> SsvaeModel:
        """The trained model, or a fresh one from the spec before the first round."""
        with self._lock:
            if self._model is None:
                self._model = self.services.query.model(self._workspace)
            return self._model

    def pool_map(self) -> PoolMap:
        """The latent map of the pool for the latest round (computed once per round), over
        the labels' classes: the dataset's and those added since."""
        with self._lock:
            rounds = len(self._workspace.metadata.rounds)
            vocabulary = self.labels().vocabulary()
            if self._map is None or self._map_rounds != rounds:
                pool = self.pool()
                # Cached in the workspace per trained model: a million-row pool is read back
                # in seconds instead of predicted for minutes at each start.
                predictions = self.services.maps.pool_predictions(
                    self._workspace, pool.x, self.model
                )
                self._map = build_pool_map(
                    pool.serials,
                    predictions,
                    self.info.vocabulary,
                    pool.y,
                    inputs=input_vectors(pool.x),
                )
                self._map_rounds = rounds
                self._map_has_layout = False
            layout = self._layouts.get(rounds)
            if layout is not None and not self._map_has_layout:
                try:
                    self._map = with_layout(self._map, layout.serials, layout.positions)
                except DashboardError as error:
                    self._layout_errors[rounds] = str(error)
                    self._layouts.pop(rounds)
                else:
                    self._map_has_layout = True
            self._map = with_vocabulary(self._map, vocabulary)
            return self._map

    def request_layout(self) -> None:
        """Lay the current round's class map out on a worker thread (from the workspace's
        cache when it holds it), unless it is laid out, failed or on its way already."""
        with self._lock:
            workspace = self._workspace
            rounds = len(workspace.metadata.rounds)
            busy = self._laying_out is not None
            if not rounds or busy or rounds in self._layouts or rounds in self._layout_errors:
                return
            self._laying_out = rounds

        def work() -> None:
            try:
                layout = self.services.maps.positions(workspace)
            except SsvaeError as error:
                with self._lock:
                    self._layout_errors[rounds] = str(error)
            except Exception as error:  # a layout bug leaves the latent map usable, and says so
                with self._lock:
                    self._layout_errors[rounds] = f"{type(error).__name__}: {error}"
            else:
                with self._lock:
                    self._layouts = {rounds: layout}  # only the latest round's is kept
            finally:
                with self._lock:
                    self._laying_out = None
                self.request_layout()  # a round that ended meanwhile gets its map too

        threading.Thread(target=work, name="ssvae-map-layout", daemon=True).start()

    def layout_ready(self) -> bool:
        """Whether the current round's class map is laid out."""
        with self._lock:
            return len(self._workspace.metadata.rounds) in self._layouts

    def layout_note(self) -> str:
        """Why the map does not show the class map ('' when it can): untrained, laying out,
        or what went wrong."""
        with self._lock:
            rounds = len(self._workspace.metadata.rounds)
            if not rounds:
                return UNTRAINED_MAP
            if rounds in self._layouts:
                return ""
            if rounds in self._layout_errors:
                return (
                    f"the class map could not be laid out ({self._layout_errors[rounds]}); "
                    "the map shows the latent (PCA)"
                )
            return LAYING_OUT

    def load_samples(self, serials: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """Inputs of pool samples by serial."""
        pool = self.pool()
        rows = np.searchsorted(pool.serials, serials)
        return pool.x[np.minimum(rows, len(pool) - 1)]

    def reconstruct(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The model's reconstructions of `x`."""
        return self.services.generator.reconstruct(self.model(), x)

    @property
    def is_text(self) -> bool:
        """Whether the pool holds messages (a text dataset) rather than images or vectors."""
        return self.info.kind == "text"

    def texts(self) -> PoolTexts | None:
        """The pool's messages, row-aligned with the map (read once); None for non-text data."""
        if not self.is_text:
            return None
        with self._lock:
            if self._texts is None:
                catalog = self.services.workspaces.texts()
                if catalog is None:
                    raise DashboardError(
                        f"dataset {self.info.name!r} is a text dataset but its source gives no "
                        "texts; open it with a text data source"
                    )
                self._texts = PoolTexts.from_catalog(catalog, np.sort(self.pool().serials))
            return self._texts

    def board(self) -> LabelBoard:
        """A Label page view model for one browser session."""
        # A decoded embedding means nothing to a reader: text data shows the message instead.
        reconstruct = None if self.is_text else self.reconstruct
        return LabelBoard(
            self.labels(),
            self.pool_map(),
            self.load_samples,
            reconstruct,
            source=DASHBOARD_SOURCE,
            texts=self.texts(),
        )

    def examples(self) -> TextExamples | None:
        """For text data: the pool messages each class and component holds most surely (per
        round, from the map); None for image and vector data."""
        texts = self.texts()
        if texts is None:
            return None
        with self._lock:
            rounds = len(self._workspace.metadata.rounds)
            if self._examples is None or self._examples[0] != rounds:
                self._examples = (rounds, pool_examples(self.pool_map(), texts))
            return self._examples[1]

    def generated(self, per_class: int, seed: int = 0) -> GeneratedSamples:
        """What the model thinks each class and component looks like (once per round)."""
        with self._lock:
            key = (len(self._workspace.metadata.rounds), per_class, seed)
            if key not in self._generated:
                generator = self.services.generator
                self._generated = {key: generator.generate(self.model(), per_class, seed)}
            return self._generated[key]

    def warm(self) -> None:
        """Compute what every page needs first, so that the first page is quick; the class
        map is laid out meanwhile on its own thread."""
        self.request_layout()
        for _, step in self.warm_steps():
            step()

    def warm_steps(self) -> list[tuple[str, Callable[[], object]]]:
        """`warm`'s work as (what a waiting user is told, the step), in order: a page that
        creates a model shows each while it runs. An untrained model generates nothing: its
        samples would be noise, and on MNIST they cost seconds of compilation."""
        size = self.workspace.metadata.pool_size
        steps: list[tuple[str, Callable[[], object]]] = [
            (f"reading the pool ({size} samples)", self.pool),
            ("building the model (JAX compiles it: the first model takes longest)", self.model),
            (f"predicting the pool's latent map ({size} samples)", self.pool_map),
        ]
        if self.is_text:  # generated embeddings mean nothing to a reader: messages instead
            steps.append(("reading the pool's messages", self.texts))
            if self.workspace.has_model:
                steps.append(("finding each class's typical messages", self.examples))
        elif self.workspace.has_model:
            steps.append(
                ("generating samples of each class", lambda: self.generated(GENERATED_PER_CLASS))
            )
        if self.workspace.has_model:
            steps.append(("measuring accuracy on the test split", self.test_accuracy))
        return steps

    def _train(
        self, epochs: int, overrides: Mapping[str, Any], listener: TrainingCallback
    ) -> TrainingReport:
        """One round through the TrainService (worker thread); refreshes model and map."""
        check_epochs(epochs)
        workspace = self.workspace
        if overrides:
            if workspace.has_model:
                raise DashboardError(
                    "hyperparameters are fixed once a model is trained (its optimizer state "
                    "is kept); clone the model on the Model page to change them"
                )
            workspace = attrs.evolve(workspace, spec=workspace.spec.evolve(**overrides))
        services = self.services
        outcome = services.train.train(workspace, epochs, services.label_store, listener=listener)
        model = services.query.model(outcome.workspace)
        with self._lock:
            self._workspace = outcome.workspace
            self._model = model
        self.warm()  # predictions for the new round, before the page is told it ended
        report: TrainingReport = outcome.report
        return report

    def test_accuracy(self) -> dict[int, float]:
        """The classifier's accuracy on the dataset's labelled test split, by round (measured
        for the rounds this server saw end; empty when the data has no labelled test split)."""
        rounds = len(self.workspace.metadata.rounds)
        with self._lock:
            if rounds and rounds not in self._test_accuracy and self._has_test_truth():
                test = self.services.workspaces.test_samples()
                assert test.y is not None
                value = accuracy(predict_chunks(self.model(), test.x).class_probs, test.y)
                if value is not None:
                    self._test_accuracy[rounds] = value
            return dict(self._test_accuracy)

    def _has_test_truth(self) -> bool:
        splits = dict(self.info.split_sizes)
        return self.info.has_true_labels and splits.get("test", 0) > 0

    def overview(self) -> ModelOverview:
        """What the Model page shows."""
        workspace = self.workspace
        spec = self.model().spec if workspace.has_model else workspace.spec
        rounds = workspace.metadata.rounds
        tau = None
        if rounds and rounds[-1].tau is not None:
            tau = np.asarray(rounds[-1].tau, np.float64)
        return ModelOverview(
            model_id=workspace.id,
            preset=workspace.metadata.preset,
            spec=spec_rows(spec),
            tau=tau,
            usage=component_usage(self.pool_map().responsibilities),
            counts=self.labels().counts(),
            runs=run_records(self.history(), self.test_accuracy()),
            class_names=self.labels().vocabulary().names,
        )

    def history(self) -> list[dict[str, str]]:
        """The rows of history.csv, one per finished round."""
        return self.services.workspaces.history(self.workspace)


class DashboardHub:
    """The server-wide state: which models exist, which are open.

    `make_app` builds each container (default `bootstrap`; tests pass one with fakes): one
    for the server's dataset, which lists and creates workspaces, and one per open workspace,
    composed by `open_workspace`.
    """

    def __init__(self, settings: AppSettings, make_app: AppFactory | None = None) -> None:
        self.settings = settings
        self._make_app = make_app
        catalog = open_catalog(settings, make_app)
        self._workspaces = catalog.workspaces
        self._spec_from_yaml = catalog.spec_from_yaml
        self._open: dict[Path, OpenModel] = {}
        self._lock = threading.Lock()

    @property
    def models_dir(self) -> Path:
        return self._workspaces.models_dir

    @property
    def presets(self) -> tuple[str, ...]:
        """Every preset: the default for the server's kind of data first (the form's choice),
        then the others made for that kind."""
        text = self.settings.data.kind == "text"
        first = DEFAULT_TEXT_PRESET if text else DEFAULT_IMAGE_PRESET
        return tuple(
            sorted(PRESETS, key=lambda name: (name != first, (name in TEXT_PRESET_VALUES) != text))
        )

    def catalog(self) -> list[WorkspaceSummary]:
        """Every workspace under the models folder, newest first."""
        summaries = [
            WorkspaceSummary(
                id=metadata.id,
                preset=metadata.preset,
                dataset=str(metadata.dataset.get("name", "?")),
                pool_size=metadata.pool_size,
                rounds=len(metadata.rounds),
                created=metadata.created,
            )
            for metadata in (workspace.metadata for workspace in self._workspaces.list())
        ]
        return sorted(summaries, key=lambda s: s.created, reverse=True)

    def create(
        self, preset: str, model_id: str | None = None, num_samples: int | None = None
    ) -> Workspace:
        """A new workspace on the server's dataset (the embedded MNIST by default)."""
        if model_id is not None:
            check_workspace_id(model_id)
        return self._workspaces.init(preset, self.settings.data, model_id, num_samples=num_samples)

    def create_from_yaml(
        self,
        base_preset: str,
        text: str,
        source_name: str,
        model_id: str | None = None,
        num_samples: int | None = None,
    ) -> Workspace:
        """A new workspace whose spec is the YAML text's (a `preset:` key in it, else
        `base_preset`, supplies the fields it leaves out); errors name the line."""
        spec = self._spec_from_yaml(text, source_name)
        return self._workspaces.create_from_spec(
            base_preset, self.settings.data, spec, model_id, num_samples=num_samples
        )

    def clone(self, source: OpenModel, model_id: str | None = None) -> Workspace:
        """A new workspace with the same preset, spec, pool and labels as `source`."""
        workspace = source.workspace
        spec = source.model().spec if workspace.has_model else workspace.spec
        created = source.services.workspaces.clone(workspace, spec, model_id)
        labels = source.labels().labels()
        if len(labels) or labels.vocabulary != source.info.vocabulary:  # labels or classes
            self.open_directory(created.directory).labels().import_labels(
                labels, "clone", add_classes=True
            )
        return created

    def directory_of(self, model_id: str) -> Path:
        """The folder of workspace `model_id`; WorkspaceError for ids that are not plain
        names, lead outside the models folder or name no workspace."""
        check_workspace_id(model_id)
        directory = self.models_dir / model_id
        if not inside(directory, self.models_dir):
            raise WorkspaceError(f"workspace id {model_id!r} leads outside the models folder")
        if not directory.is_dir():
            raise WorkspaceError(
                f"there is no model {model_id!r} in {self.models_dir}; create one on the "
                "start page or with ssvae init"
            )
        return directory

    def open(self, model_id: str) -> OpenModel:
        """The open model with id `model_id` (opened on first use)."""
        return self.open_directory(self.directory_of(model_id))

    def open_directory(self, directory: Path) -> OpenModel:
        """The open model in `directory` (a folder given on the command line)."""
        key = Path(directory).resolve()
        with self._lock:
            if key not in self._open:
                opened = open_workspace(key, self.settings.artifacts_dir, self._make_app)
                self._open[key] = OpenModel(opened.workspace, opened.services())
            return self._open[key]
