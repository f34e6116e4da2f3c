"""The latent map figure: its class colours, its colour bar and its selection rings."""

from __future__ import annotations

import numpy as np
import pytest

from ssvae.entrypoints.dashboard.latent_map import NONE_COLOUR, category_palette


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
