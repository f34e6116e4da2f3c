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
    USER_LABEL,
    ColourColumn,
    PoolMap,
    nearest_row,
    rows_in_box,
    rows_in_polygon,
)

IntArray = npt.NDArray[np.int64]
SOURCE_NAME = "ssvae-latent-source"
LABELLED_SOURCE_NAME = "ssvae-labelled-source"
FOCUS_SOURCE_NAME = "ssvae-focus-source"
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
    or box.

    Three layers: the whole pool (60,000 points, drawn once and recoloured only when the
    colour mode changes), the labelled points on top in their class colours, and a ring
    around the clicked point. A label changes only the small top layer, so the browser never
    reprocesses the whole pool for a key press.
    """

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
        self._codes = np.asarray(user_codes, np.int64).copy()
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
        base = figure.renderers[0]
        self.mapper = LinearColorMapper(palette=["#000000"], low=0, high=1)
        self.source: ColumnDataSource = base.data_source
        self.source.name = SOURCE_NAME
        self.source.data = {
            "x": pool_map.xy[:, 0],
            "y": pool_map.xy[:, 1],
            "serial": pool_map.serials,
            "colour": column.values.astype(np.float64),
            "predicted": pool_map.predicted,
            "certainty": pool_map.certainty,
        }
        fill = {"field": "colour", "transform": self.mapper}
        glyphs = (base.glyph, base.nonselection_glyph, base.selection_glyph, base.muted_glyph)
        for glyph in (g for g in glyphs if g is not None and g != "auto"):
            glyph.update(x="x", y="y", fill_color=fill, line_color=fill, size=UNLABELLED_SIZE)
            glyph.update(fill_alpha=0.7, line_alpha=0.7)
        base.hover_glyph = None
        classes = len(pool_map.vocabulary)
        label_mapper = LinearColorMapper(
            palette=category_palette(classes), low=-0.5, high=classes - 0.5
        )
        self.labelled = ColumnDataSource(self._labelled_data(), name=LABELLED_SOURCE_NAME)
        labelled = figure.scatter(
            "x",
            "y",
            source=self.labelled,
            size=LABELLED_SIZE,
            fill_color={"field": "label", "transform": label_mapper},
            line_color="#202020",
            line_width=0.8,
        )
        self.focus = ColumnDataSource({"x": [], "y": []}, name=FOCUS_SOURCE_NAME)
        figure.scatter(
            "x",
            "y",
            source=self.focus,
            size=16,
            fill_alpha=0.0,
            line_color="#000000",
            line_width=2.5,
        )
        self._add_tools(figure, base, labelled)
        self.figure = figure
        self.recolour(column)
        figure.on_event(events.Tap, self._tapped)
        figure.on_event(events.SelectionGeometry, self._selected)
        self.pane = pn.pane.Bokeh(figure, sizing_mode="fixed")

    def _labelled_data(self) -> dict[str, Any]:
        rows = np.flatnonzero(self._codes >= 0)
        return {
            "x": self.pool_map.xy[rows, 0],
            "y": self.pool_map.xy[rows, 1],
            "serial": self.pool_map.serials[rows],
            "label": self._codes[rows],
            "predicted": self.pool_map.predicted[rows],
        }

    def _add_tools(self, figure: Any, base: Any, labelled: Any) -> None:
        names = list(self.pool_map.vocabulary.names)
        name_of = CustomJSHover(args={"names": names}, code=_NAME_OF_CODE)
        pool_hover = HoverTool(
            renderers=[base],
            tooltips=[
                ("serial", "@serial"),
                ("predicted", "@predicted{custom}"),
                ("certainty", "@certainty{0.000}"),
            ],
            formatters={"@predicted": name_of},
        )
        label_hover = HoverTool(
            renderers=[labelled],
            tooltips=[("serial", "@serial"), ("label", "@label{custom}")],
            formatters={"@label": name_of},
        )
        # "inspect": a click reports where it was without selecting in the browser, which
        # would make it reprocess the whole pool; the ring layer shows the clicked point.
        tap = TapTool(behavior="inspect", renderers=[base])
        pan, wheel = PanTool(), WheelZoomTool()
        lasso = LassoSelectTool(renderers=[base])
        box = BoxSelectTool(renderers=[base])
        figure.tools = [pan, wheel, tap, lasso, box, pool_hover, label_hover, ResetTool()]
        figure.toolbar.active_drag = pan
        figure.toolbar.active_scroll = wheel
        figure.toolbar.active_tap = tap
        figure.toolbar.active_inspect = [pool_hover, label_hover]

    def recolour(self, column: ColourColumn) -> None:
        """Colour every pool point by `column` (category codes or continuous values)."""
        values = column.values.astype(np.float64)
        if column.mode == USER_LABEL:
            values = np.full(len(values), -1.0)  # the labelled layer above shows the labels
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

    def patch_labels(self, rows: IntArray, codes: IntArray) -> None:
        """Redraw `rows` with their new user-label codes (-1: unlabelled)."""
        if rows.size == 0:
            return
        self._codes[rows] = codes
        self.labelled.data = self._labelled_data()

    def set_labels(self, codes: IntArray) -> None:
        """Redraw every point's user-label code (after changes made elsewhere)."""
        self._codes = np.asarray(codes, np.int64).copy()
        self.labelled.data = self._labelled_data()

    def highlight(self, rows: IntArray) -> None:
        """Ring `rows` on the map."""
        self.focus.data = {"x": self.pool_map.xy[rows, 0], "y": self.pool_map.xy[rows, 1]}

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
