"""The latent map figure: its class colours, its colour bar and its selection rings."""

from __future__ import annotations

import numpy as np
import pytest

from ssvae.domain.labels import ClassVocabulary, LabelSet
from ssvae.domain.model import Predictions
from ssvae.entrypoints.dashboard.latent_map import NONE_COLOUR, LatentMapView, category_palette
from ssvae.entrypoints.dashboard.viewmodels.map import (
    ACQUISITION,
    CERTAINTY,
    PREDICTED,
    TRUE_LABEL,
    USER_LABEL,
    build_pool_map,
    colour_column,
)

VOCABULARY = ClassVocabulary.digits(3)


def _rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], np.float64)


@pytest.mark.parametrize("count", range(1, 41))
def test_no_class_colour_reads_as_the_unlabelled_grey(count: int) -> None:
    palette = np.array([_rgb(c) for c in category_palette(count)])
    assert len(palette) == count
    # Greyness is a small spread between the channels, whatever the lightness: Category10's
    # #7f7f7f is far from NONE_COLOUR in RGB yet reads as grey beside it.
    assert (palette.max(axis=1) - palette.min(axis=1)).min() >= 40
    assert np.linalg.norm(palette - _rgb(NONE_COLOUR), axis=1).min() >= 80
    distances = np.linalg.norm(palette[:, None, :] - palette[None, :, :], axis=2)
    np.fill_diagonal(distances, np.inf)
    assert distances.min() >= 12  # distinct: no two classes share a colour


def test_continuous_modes_show_a_colour_bar_of_their_range_and_categories_none() -> None:
    import holoviews as hv

    hv.extension("bokeh", logo=False)
    rng = np.random.default_rng(0)
    n = 30
    probs = rng.dirichlet(np.ones(3), n).astype(np.float32)
    latent = rng.normal(size=(n, 2)).astype(np.float32)
    pool_map = build_pool_map(
        np.arange(n), Predictions(probs, latent, probs.max(axis=1)), VOCABULARY, np.arange(n) % 3
    )
    labels = LabelSet(VOCABULARY, {0: "1"})
    view = LatentMapView(
        pool_map,
        colour_column(pool_map, USER_LABEL, labels),
        np.full(n, -1),
        lambda _: None,
        lambda _: None,
    )
    assert view.colour_bar in view.figure.right and not view.colour_bar.visible
    for mode in (CERTAINTY, ACQUISITION):
        column = colour_column(pool_map, mode, labels)
        view.recolour(column)
        assert view.colour_bar.visible and view.colour_bar.title == column.mode
        finite = column.values[np.isfinite(column.values)]
        assert (view.scale.low, view.scale.high) == (finite.min(), finite.max())
    for mode in (PREDICTED, TRUE_LABEL, USER_LABEL):
        view.recolour(colour_column(pool_map, mode, labels))
        assert not view.colour_bar.visible
