"""The Model page's history of runs and tau heatmap, from the rows and arrays it is given."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssvae.entrypoints.dashboard.model_page import TAU_MAX_WIDTH, runs_html, tau_plot
from ssvae.entrypoints.dashboard.viewmodels.model import ModelOverview, run_records, short_names


def _row(round_: int, epochs: int, val_loss: str, reason: str) -> dict[str, str]:
    return {
        "round": str(round_),
        "labels": "20",
        "epochs_run": str(epochs),
        "stop_reason": reason,
        "loss": "140.0",
        "val_loss": val_loss,
        "val_accuracy": "",  # validation holds out unlabelled samples: never measured
    }


def _overview(runs: tuple = (), names: tuple[str, ...] = (), tau: np.ndarray | None = None):
    return ModelOverview(
        model_id="m",
        preset="standard",
        spec=(),
        tau=tau,
        usage=None,
        counts={},
        runs=runs,
        class_names=names,
    )


def test_a_run_stopped_before_its_first_epoch_shows_no_figure_and_says_why() -> None:
    history = [_row(1, 3, "136.5", "max_epochs"), _row(2, 0, "", "interrupted")]
    first, stopped = run_records(history, {1: 0.81, 2: 0.093})
    assert (first.val_loss, first.test_accuracy, first.trained) == (136.5, 0.81, True)
    assert (stopped.val_loss, stopped.test_accuracy, stopped.trained) == (None, None, False)
    assert stopped.stop_reason == "interrupted"
    page = runs_html(_overview((first, stopped)))
    assert "136.5" in page and "81.0%" in page
    assert "9.3%" not in page  # a 0-epoch run's accuracy is its predecessor's or chance
    assert page.count("stopped before the first epoch") == 1
    assert "validation loss" in page and "validation</th>" not in page


def test_the_validation_column_shows_the_recorded_validation_loss_or_a_dash() -> None:
    (run,) = run_records([_row(1, 2, "nan", "max_epochs")], {})
    assert run.val_loss is None and run.test_accuracy is None
    assert "<td>-</td><td>-</td>" in runs_html(_overview((run,)))


def test_short_names_cut_long_class_names_and_keep_them_apart() -> None:
    names = ("OpenSSH", "Hadoop-MapReduce-ApplicationMaster", "Hadoop-MapReduce-Client", "7")
    labels = short_names(names, limit=10)
    assert labels[0] == "OpenSSH" and labels[3] == "7"
    assert all(len(label) <= 13 for label in labels)
    assert len(set(labels)) == len(names)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=40, unique=True))
def test_short_names_are_one_distinct_label_per_class(names: list[str]) -> None:
    labels = short_names(tuple(names))
    assert len(labels) == len(names) and len(set(labels)) == len(names)


def _tau_figure(classes: int, name_length: int) -> dict:
    names = tuple(f"{'x' * (name_length - 4)}:E{k:02d}"[-name_length:] for k in range(classes))
    tau = np.random.default_rng(0).dirichlet(np.ones(classes), size=5)
    plot = tau_plot(_overview(names=names, tau=tau)).object
    return {
        "width": plot.width,
        "rotation": plot.xaxis[0].major_label_orientation,
        "factors": list(plot.x_range.factors),
        "tooltips": [tip for tool in plot.tools for tip in getattr(tool, "tooltips", [])],
    }


@pytest.mark.parametrize("classes", [25, 99])
def test_the_tau_heatmap_rotates_class_names_and_grows_with_the_classes(classes: int) -> None:
    figure = _tau_figure(classes, name_length=9)
    assert figure["rotation"] == pytest.approx(np.pi / 2)
    assert len(figure["factors"]) == classes  # no class merged with another
    assert figure["width"] >= min(18 * classes, TAU_MAX_WIDTH)
    assert ("class", "@name") in figure["tooltips"]  # the full name on hover


def test_ten_digit_classes_stay_flat_on_a_compact_heatmap() -> None:
    figure = _tau_figure(10, name_length=1)
    assert figure["rotation"] in (0, "horizontal")
    assert figure["width"] <= 460
