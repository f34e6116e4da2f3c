# mypy: disable-error-code="no-untyped-call"
# (Panel and Bokeh widgets are param classes whose constructors carry no annotations.)
"""The latent scatter: a HoloViews Points element rendered once to a WebGL Bokeh figure.

Redraws after a label are patches of single rows of the figure's data source, so a key press
sends a few bytes to the browser, not 60,000 points.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import holoviews as hv
import numpy as np
import numpy.typing as npt
import panel as pn
from bokeh import events
from bokeh.models import (
    BoxSelectTool,
    ColumnDataSource,
    CustomJSHover,
    HoverTool,
    LassoSelectTool,
    LinearColorMapper,
    PanTool,
    ResetTool,
    TapTool,
    WheelZoomTool,
)
from bokeh.palettes import Category10, Category20, Turbo256, Viridis256

from ssvae.application.dashboard_map import (
    ColourColumn,
    PoolMap,
    nearest_row,
    rows_in_box,
    rows_in_polygon,
)

IntArray = npt.NDArray[np.int64]
SOURCE_NAME = "ssvae-latent-source"
FIGURE_NAME = "ssvae-latent-map"
NONE_COLOUR = "#c8c8c8"
LABELLED_SIZE = 7.0
UNLABELLED_SIZE = 3.0

_NAME_OF_CODE = "return value < 0 ? '-' : names[value];"


def category_palette(count: int) -> list[str]:
    """`count` distinguishable colours."""
    if count <= 10:
        return list(Category10[10][: max(count, 1)])
    if count <= 20:
        return list(Category20[20][:count])
    step = len(Turbo256) / count
    return [Turbo256[int(i * step)] for i in range(count)]


class LatentMapView:
    """The map figure; calls `on_point(row)` for a click and `on_group(rows)` for a lasso
    or box."""

    def __init__(
        self,
        pool_map: PoolMap,
        column: ColourColumn,
        user_codes: IntArray,
        on_point: Callable[[int], None],
        on_group: Callable[[IntArray], None],
        *,
        width: int = 720,
        height: int = 640,
    ) -> None:
        self.pool_map = pool_map
        self._on_point = on_point
        self._on_group = on_group
        x_name, y_name = pool_map.axis_names
        element = hv.Points((pool_map.xy[:, 0], pool_map.xy[:, 1]), kdims=[x_name, y_name]).opts(
            width=width,
            height=height,
            size=UNLABELLED_SIZE,
            tools=[],
            default_tools=[],
            toolbar="above",
            title="latent space of the pool",
            backend_opts={"plot.output_backend": "webgl"},
        )
        figure = hv.render(element, backend="bokeh")
        figure.name = FIGURE_NAME
        renderer = figure.renderers[0]
        self.mapper = LinearColorMapper(palette=["#000000"], low=0, high=1)
        self.source: ColumnDataSource = renderer.data_source
        self.source.name = SOURCE_NAME
        labelled = user_codes >= 0
        self.source.data = {
            "x": pool_map.xy[:, 0],
            "y": pool_map.xy[:, 1],
            "serial": pool_map.serials,
            "colour": column.values.astype(np.float64),
            "size": np.where(labelled, LABELLED_SIZE, UNLABELLED_SIZE),
            "label": user_codes.astype(np.int64),
            "predicted": pool_map.predicted,
            "certainty": pool_map.certainty,
        }
        fill = {"field": "colour", "transform": self.mapper}
        glyphs = (renderer.glyph, renderer.nonselection_glyph, renderer.muted_glyph)
        for glyph in (g for g in glyphs if g is not None and g != "auto"):
            glyph.update(
                x="x",
                y="y",
                fill_color=fill,
                line_color=fill,
                size={"field": "size"},
                fill_alpha=0.8,
            )
            glyph.line_alpha = 0.8
        renderer.selection_glyph = renderer.glyph.clone(
            line_color="#000000", line_width=2.0, fill_alpha=1.0, line_alpha=1.0
        )
        renderer.hover_glyph = None
        self._add_tools(figure)
        self.figure = figure
        self.recolour(column)
        figure.on_event(events.Tap, self._tapped)
        figure.on_event(events.SelectionGeometry, self._selected)
        self.pane = pn.pane.Bokeh(figure, sizing_mode="fixed")

    def _add_tools(self, figure: Any) -> None:
        names = list(self.pool_map.vocabulary.names)
        name_of = CustomJSHover(args={"names": names}, code=_NAME_OF_CODE)
        hover = HoverTool(
            tooltips=[
                ("serial", "@serial"),
                ("label", "@label{custom}"),
                ("predicted", "@predicted{custom}"),
                ("certainty", "@certainty{0.000}"),
            ],
            formatters={"@label": name_of, "@predicted": name_of},
        )
        tap = TapTool()
        pan, wheel = PanTool(), WheelZoomTool()
        figure.tools = [pan, wheel, tap, LassoSelectTool(), BoxSelectTool(), hover, ResetTool()]
        figure.toolbar.active_drag = pan
        figure.toolbar.active_scroll = wheel
        figure.toolbar.active_tap = tap

    def recolour(self, column: ColourColumn) -> None:
        """Colour every point by `column` (category codes or continuous values)."""
        values = column.values.astype(np.float64)
        if column.categories is not None:
            count = len(column.categories)
            self.mapper.update(
                palette=category_palette(count), low=-0.5, high=count - 0.5, low_color=NONE_COLOUR
            )
        else:
            finite = values[np.isfinite(values)]
            low = float(finite.min()) if finite.size else 0.0
            high = float(finite.max()) if finite.size else 1.0
            self.mapper.update(
                palette=list(Viridis256), low=low, high=high if high > low else low + 1e-9
            )
        self.source.patch({"colour": [(slice(0, len(values)), values)]})

    def patch_labels(self, rows: IntArray, codes: IntArray, *, recolour: bool) -> None:
        """Redraw `rows` with their new user-label codes (and colours in user-label mode)."""
        if rows.size == 0:
            return
        row_list = [int(r) for r in rows]
        patches: dict[str, list[tuple[int, Any]]] = {
            "label": list(zip(row_list, (int(c) for c in codes), strict=True)),
            "size": [
                (r, LABELLED_SIZE if c >= 0 else UNLABELLED_SIZE)
                for r, c in zip(row_list, codes, strict=True)
            ],
        }
        if recolour:
            patches["colour"] = [(r, float(c)) for r, c in zip(row_list, codes, strict=True)]
        self.source.patch(patches)

    def set_labels(self, codes: IntArray, *, recolour: bool) -> None:
        """Redraw every point's user-label code (after changes made elsewhere)."""
        whole = slice(0, int(codes.size))
        patches: dict[str, list[tuple[slice, Any]]] = {
            "label": [(whole, codes.astype(np.int64))],
            "size": [(whole, np.where(codes >= 0, LABELLED_SIZE, UNLABELLED_SIZE))],
        }
        if recolour:
            patches["colour"] = [(whole, codes.astype(np.float64))]
        self.source.patch(patches)

    def highlight(self, rows: IntArray) -> None:
        """Mark `rows` as selected on the map."""
        self.source.selected.indices = [int(r) for r in rows]

    def _tapped(self, event: events.Tap) -> None:
        if event.x is None or event.y is None:
            return
        row = nearest_row(self.pool_map, float(event.x), float(event.y), *self._spans(self.figure))
        self.highlight(np.array([row]))
        self._on_point(row)

    @staticmethod
    def _spans(figure: Any) -> tuple[float, float]:
        """The visible width and height in data units (1 before the browser set them)."""
        spans: list[float] = []
        for axis in (figure.x_range, figure.y_range):
            start, end = getattr(axis, "start", None), getattr(axis, "end", None)
            if isinstance(start, int | float) and isinstance(end, int | float):
                spans.append(abs(float(end) - float(start)))
            else:
                spans.append(1.0)
        return spans[0], spans[1]

    def _selected(self, event: events.SelectionGeometry) -> None:
        geometry: dict[str, Any] = dict(event.geometry or {})
        if not event.final or geometry.get("type") == "point":
            return
        if geometry.get("type") == "poly":
            rows = rows_in_polygon(self.pool_map, geometry["x"], geometry["y"])
        elif geometry.get("type") == "rect":
            rows = rows_in_box(
                self.pool_map, geometry["x0"], geometry["x1"], geometry["y0"], geometry["y1"]
            )
        else:
            return
        self.highlight(rows)
        self._on_group(rows)
