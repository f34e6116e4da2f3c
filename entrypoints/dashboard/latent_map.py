# mypy: disable-error-code="no-untyped-call"
# (Panel and Bokeh widgets are param classes whose constructors carry no annotations.)
"""The latent map: the pool as one image datashader aggregates on the server, the labelled
points on top.

The pool is aggregated by HoloViews' datashader operations (`datashade`, `rasterize`) into a
picture of the visible ranges at the figure's resolution, again after each zoom or pan: its
cost grows with the pixels, not with the points, so a million points are drawn as quickly as a
few thousand and the browser receives one image. Colours blend where classes overlap and
grow denser where points crowd. A label redraws only the small layer of labelled points, so a
key press sends those points to the browser, not the pool; the pool's image is redrawn only by
a recolour, a zoom or a pan.

The figure is Bokeh's own, not a HoloViews plot: its labelled layer, rings and tools are
plain Bokeh models that a key press patches in place, and the re-aggregation is driven by the
figure's range events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import datashader as ds
import holoviews as hv
import numpy as np
import numpy.typing as npt
import pandas as pd
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
from bokeh.models.annotations.legends import ColorBar
from bokeh.palettes import Category10, Turbo256, Viridis256
from holoviews.operation.datashader import datashade, rasterize, spread

from ssvae.entrypoints.dashboard.viewmodels.map import (
    USER_LABEL,
    ColourColumn,
    PoolMap,
    reach_rows,
    row_at,
    rows_in_box,
    rows_in_polygon,
)
from ssvae.entrypoints.dashboard.viewmodels.text import shortened

IntArray = npt.NDArray[np.int64]
SOURCE_NAME = "ssvae-latent-source"
SERIAL_SOURCE_NAME = "ssvae-serial-source"
LABELLED_SOURCE_NAME = "ssvae-labelled-source"
FOCUS_SOURCE_NAME = "ssvae-focus-source"
FIGURE_NAME = "ssvae-latent-map"
COLOUR_BAR_NAME = "ssvae-colour-bar"
NONE_COLOUR = "#c8c8c8"
LABELLED_SIZE = 7.0
# The faintest a lone point is drawn; denser pixels grow opaque (datashader's histogram
# equalisation), so crowded clusters read as denser than scattered points.
MIN_ALPHA = 170
POINT_SPREAD = 1  # each point is drawn as a square of 2 * POINT_SPREAD + 1 pixels

# The serial the pool's hover raster holds under the pointer, '-' where no point is near.
_SERIAL_CODE = "return Number.isNaN(value) ? '-' : String(Math.round(value));"

_NAME_OF_CODE = "return value < 0 ? '-' : names[value];"
# The serial under the pointer ({serial}) or its message ({text}): a binary search of the
# map's ascending serials.
_TEXT_OF_SERIAL = """
if (Number.isNaN(value)) return '-';
if (format === 'serial') return String(Math.round(value));
let low = 0, high = serials.length - 1;
while (low <= high) {
  const middle = (low + high) >> 1;
  if (serials[middle] < value) low = middle + 1;
  else if (serials[middle] > value) high = middle - 1;
  else return texts[middle];
}
return '';
"""
HOVER_CHARACTERS = 160  # a hover shows the start of a message; the detail shows all of it


# Category10's grey would read as an unlabelled point (NONE_COLOUR); an indigo takes its place.
_CATEGORY10_WITHOUT_GREY = tuple("#393b79" if c == "#7f7f7f" else c for c in Category10[10])


def category_palette(count: int) -> list[str]:
    """`count` distinguishable colours, none of them grey: grey is the unlabelled points'
    colour, so a grey class would vanish among them.

    Up to 10 classes: Category10 with its grey replaced. More: evenly spaced samples of Turbo,
    which holds no grey (Category20's pale halves and its two greys read as unlabelled).
    """
    if count <= 10:
        return list(_CATEGORY10_WITHOUT_GREY[: max(count, 1)])
    step = len(Turbo256) / count
    return [Turbo256[int(i * step)] for i in range(count)]


def _continuous_range(values: npt.NDArray[np.float64]) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    low = float(finite.min()) if finite.size else 0.0
    high = float(finite.max()) if finite.size else 1.0
    return low, (high if high > low else low + 1e-9)


def pool_points(pool_map: PoolMap, column: ColourColumn) -> tuple[hv.Points, dict[str, Any]]:
    """The pool as HoloViews points with their colour column (`code`, a category, -1 for
    none, or `value`), and the colour scale's settings for `shaded_pool`."""
    values = column.values.astype(np.float64)
    frame = pd.DataFrame(
        {
            "x": pool_map.xy[:, 0],
            "y": pool_map.xy[:, 1],
            "row": np.arange(len(pool_map), dtype=np.int64),
        }
    )
    if column.mode == USER_LABEL:
        values = np.full(len(values), -1.0)  # the labelled layer above shows the labels
    if column.categories is not None or column.mode == USER_LABEL:
        palette = category_palette(len(column.categories or ()))
        codes = np.clip(np.nan_to_num(values, nan=-1).astype(np.int64), -1, len(palette) - 1)
        # Only the categories present: datashader aggregates one layer per category, and the
        # default colouring (every point unlabelled) has one, not a layer per class.
        counts = np.bincount(codes + 1, minlength=len(palette) + 1)
        # Two at least: datashader shades a single category black, ignoring its colour.
        missing = 2 - int(np.count_nonzero(counts))
        if missing > 0:
            counts[np.flatnonzero(counts == 0)[:missing]] = 1
        present = np.flatnonzero(counts) - 1
        frame["code"] = pd.Categorical(codes, categories=present.tolist())
        colours = [NONE_COLOUR, *palette]
        scale: dict[str, Any] = {
            "palette": palette,
            "colour_key": [colours[code + 1] for code in present.tolist()],
        }
        return hv.Points(frame, kdims=["x", "y"], vdims=["row", "code"]), scale
    low, high = _continuous_range(values)
    frame["value"] = np.nan_to_num(values, nan=low)  # no value yet: drawn at the low end
    scale = {"palette": list(Viridis256), "low": low, "high": high}
    return hv.Points(frame, kdims=["x", "y"], vdims=["row", "value"]), scale


def _pixels(element: Any) -> npt.NDArray[np.uint32]:
    """An RGB element's (height, width) RGBA pixels as uint32, row 0 at the bottom."""
    data = element.data
    if isinstance(data, dict):  # after a spread, HoloViews keeps the bands in a dict
        bands = np.asarray(data[tuple(d.name for d in element.vdims)])
    else:
        bands = np.asarray(data)
    return np.ascontiguousarray(bands, dtype=np.uint8).view(np.uint32)[..., 0]


def shaded_pool(
    points: hv.Points, scale: dict[str, Any], ranges: dict[str, Any]
) -> npt.NDArray[np.uint32]:
    """The pool's colours over `ranges` (x_range, y_range, width, height), by datashader:
    categories blended per pixel with opacity by density, values by their mean per pixel on
    the colour bar's linear scale; each point spreads a pixel around it, so a lone one
    stays visible."""
    if "colour_key" in scale:
        element = datashade(
            points,
            aggregator=ds.count_cat("code"),
            color_key=scale["colour_key"],
            min_alpha=MIN_ALPHA,
            dynamic=False,
            **ranges,
        )
    else:
        element = datashade(
            points,
            aggregator=ds.mean("value"),
            cmap=scale["palette"],
            cnorm="linear",
            clims=(scale["low"], scale["high"]),
            dynamic=False,
            **ranges,
        )
    return _pixels(spread(element, px=POINT_SPREAD))


def pool_rows(points: hv.Points, ranges: dict[str, Any]) -> npt.NDArray[np.int64]:
    """(height, width) map rows over `ranges`, by datashader: the highest row falling in each
    pixel, -1 where none does."""
    element = rasterize(points, aggregator=ds.max("row"), dynamic=False, **ranges)
    values = np.asarray(next(iter(element.data.data_vars.values())), np.float64)
    return np.where(np.isfinite(values), values, -1).astype(np.int64)


def _padded(values: npt.NDArray[np.float64]) -> tuple[float, float]:
    low, high = float(values.min()), float(values.max())
    pad = 0.05 * (high - low) or 0.5
    return low - pad, high + pad


class LatentMapView:
    """The map figure; calls `on_point(row)` for a click and `on_group(rows)` for a lasso
    or box.

    Layers: the whole pool as one image datashader aggregates (again after each zoom or pan),
    so the browser draws one picture instead of a glyph per point; an invisible image of the
    serial each pixel names, within a few pixels of a point (`reach_rows`), for the hover,
    in which a click is resolved too, so both name the same point; the labelled points on top
    in their class colours; a ring around the clicked point. A key press changes only the small
    labelled layer.
    """

    def __init__(
        self,
        pool_map: PoolMap,
        column: ColourColumn,
        user_codes: IntArray,
        on_point: Callable[[int], None],
        on_group: Callable[[IntArray], None],
        *,
        texts: list[str] | None = None,
        width: int = 720,
        height: int = 640,
    ) -> None:
        self.pool_map = pool_map
        # Messages (text data) travel to the browser once, cut short, for the hover.
        self._texts = None if texts is None else [shortened(t, HOVER_CHARACTERS) for t in texts]
        self._on_point = on_point
        self._on_group = on_group
        self._codes = np.asarray(user_codes, np.int64).copy()
        # Once per map: an argmax over a million rows' probabilities at every key press cost
        # 34 ms of its 100 ms.
        self._predicted = pool_map.predicted
        self._raster_size = (width - 80, height - 80)
        self._view = (_padded(pool_map.xy[:, 0]), _padded(pool_map.xy[:, 1]))
        self._points, scale = pool_points(pool_map, column)
        self._reached = np.full(self._raster_size[::-1], -1, np.int64)  # set by _draw
        (x0, x1), (y0, y1) = self._view
        x_name, y_name = pool_map.axis_names
        empty = np.zeros((2, 2, 4), np.uint8)
        element = hv.RGB(empty, bounds=(x0, y0, x1, y1), kdims=[x_name, y_name]).opts(
            width=width,
            height=height,
            tools=[],
            default_tools=[],
            toolbar="above",
            title="latent space of the pool",
        )
        figure = hv.render(element, backend="bokeh")
        figure.name = FIGURE_NAME
        figure.x_range.update(start=x0, end=x1, reset_start=x0, reset_end=x1)
        figure.y_range.update(start=y0, end=y1, reset_start=y0, reset_end=y1)
        self.source: ColumnDataSource = figure.renderers[0].data_source
        self.source.name = SOURCE_NAME
        # Tagged with the pool's size: tests and benchmarks read how many points it holds.
        self.serial_source = ColumnDataSource(name=SERIAL_SOURCE_NAME, tags=[len(pool_map)])
        serial_image = figure.image(
            image="image",
            x="x",
            y="y",
            dw="dw",
            dh="dh",
            source=self.serial_source,
            color_mapper=LinearColorMapper(palette=["#00000000"], low=0, high=1),
            global_alpha=0.0,
        )
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
            # A lasso selects in this layer too; Bokeh would fade the points left out of it,
            # hiding their class colours: selected or not, they look the same.
            nonselection_fill_alpha=1.0,
            nonselection_line_alpha=1.0,
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
        # The pool is an image of ready-made colours, so a continuous mode (certainty, a
        # score, novelty) says which colour means what through a bar of its own scale.
        self.scale = LinearColorMapper(palette=list(Viridis256), low=0.0, high=1.0)
        self.colour_bar = ColorBar(
            color_mapper=self.scale,
            name=COLOUR_BAR_NAME,
            width=12,
            title_text_font_size="9pt",
            visible=False,
        )
        figure.add_layout(self.colour_bar, "right")
        self._add_tools(figure, serial_image, labelled)
        self.figure = figure
        self._scale = scale
        self._show_scale(column, scale)
        self._draw()
        figure.on_event(events.Tap, self._tapped)
        figure.on_event(events.SelectionGeometry, self._selected)
        figure.on_event(events.RangesUpdate, self._ranges_changed)
        self.pane = pn.pane.Bokeh(figure, sizing_mode="fixed")

    def _ranges(self) -> dict[str, Any]:
        (x0, x1), (y0, y1) = self._view
        width, height = self._raster_size
        return {"x_range": (x0, x1), "y_range": (y0, y1), "width": width, "height": height}

    def _draw(self) -> None:
        """Aggregate the pool for the current view: its colours, and the serial each pixel
        names for the hover and the click."""
        (x0, x1), (y0, y1) = self._view
        placement = {"x": [x0], "y": [y0], "dw": [x1 - x0], "dh": [y1 - y0]}
        self._reached = reach_rows(pool_rows(self._points, self._ranges()))
        named = self._reached >= 0
        serials = np.full(self._reached.shape, np.nan)
        serials[named] = self.pool_map.serials[self._reached[named]]
        self._shade()
        self.serial_source.data = {"image": [serials], **placement}

    def _shade(self) -> None:
        (x0, x1), (y0, y1) = self._view
        image = shaded_pool(self._points, self._scale, self._ranges())
        self.source.data = {
            "image": [image],
            "x": [x0],
            "y": [y0],
            "dw": [x1 - x0],
            "dh": [y1 - y0],
        }

    def _ranges_changed(self, event: events.RangesUpdate) -> None:
        bounds = (event.x0, event.x1, event.y0, event.y1)
        if any(b is None for b in bounds):
            return
        x0, x1, y0, y1 = (float(b) for b in bounds)  # type: ignore[arg-type]
        if (x0, x1) == self._view[0] and (y0, y1) == self._view[1]:
            return
        self._view = ((x0, x1), (y0, y1))
        self._draw()

    def _labelled_data(self) -> dict[str, Any]:
        rows = np.flatnonzero(self._codes >= 0)
        data = {
            "x": self.pool_map.xy[rows, 0],
            "y": self.pool_map.xy[rows, 1],
            "serial": self.pool_map.serials[rows],
            "label": self._codes[rows],
            "predicted": self._predicted[rows],
        }
        if self._texts is not None:
            data["text"] = [self._texts[row] for row in rows.tolist()]
        return data

    def _add_tools(self, figure: Any, serial_image: Any, labelled: Any) -> None:
        names = list(self.pool_map.vocabulary.names)
        name_of = CustomJSHover(args={"names": names}, code=_NAME_OF_CODE)
        pool_tips = [("serial", "@image{serial}")]
        pool_formatters: dict[str, Any] = {"@image": CustomJSHover(code=_SERIAL_CODE)}
        label_tips = [
            ("serial", "@serial"),
            ("label", "@label{custom}"),
            ("predicted", "@predicted{custom}"),
        ]
        if self._texts is not None:
            text_of = CustomJSHover(
                args={"serials": self.pool_map.serials.tolist(), "texts": self._texts},
                code=_TEXT_OF_SERIAL,
            )
            pool_tips = [("serial", "@image{serial}"), ("message", "@image{text}")]
            pool_formatters["@image"] = text_of
            label_tips.append(("message", "@text"))
        pool_hover = HoverTool(
            renderers=[serial_image], tooltips=pool_tips, formatters=pool_formatters
        )
        label_hover = HoverTool(
            renderers=[labelled],
            tooltips=label_tips,
            formatters={"@label": name_of, "@predicted": name_of},
        )
        # Clicks and lassos are resolved on the server against every pool point; in the
        # browser they only touch the small labelled layer.
        tap = TapTool(behavior="inspect", renderers=[labelled])
        pan, wheel = PanTool(), WheelZoomTool()
        lasso = LassoSelectTool(renderers=[labelled])
        box = BoxSelectTool(renderers=[labelled])
        figure.tools = [pan, wheel, tap, lasso, box, pool_hover, label_hover, ResetTool()]
        figure.toolbar.active_drag = pan
        figure.toolbar.active_scroll = wheel
        figure.toolbar.active_tap = tap
        figure.toolbar.active_inspect = [pool_hover, label_hover]

    def recolour(self, column: ColourColumn) -> None:
        """Colour every pool point by `column` (category codes or continuous values)."""
        self._points, self._scale = pool_points(self.pool_map, column)
        self._show_scale(column, self._scale)
        self._shade()  # the positions, and so the serial each pixel names, are the same

    def _show_scale(self, column: ColourColumn, scale: dict[str, Any]) -> None:
        """The colour bar of a continuous column, with its range; none for categories, whose
        colours the class counters and the legend name."""
        continuous = column.categories is None and column.mode != USER_LABEL
        if continuous:
            self.scale.update(low=scale["low"], high=scale["high"])
            self.colour_bar.title = column.mode
        self.colour_bar.visible = continuous

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

    def clear_selection(self) -> None:
        """Remove the rings and the browser's selection: once their points are labelled, the
        rings would only hide the new class colours."""
        self.focus.data = {"x": [], "y": []}
        self.labelled.selected.indices = []

    def row_at(self, x: float, y: float) -> int:
        """The row the hover names at data position (x, y), -1 where no point is near."""
        return row_at(self._reached, *self._view, x, y)

    def _tapped(self, event: events.Tap) -> None:
        if event.x is None or event.y is None:
            return
        # The pixel the hover read: a click selects the point the hover named there, and
        # nothing where it named none.
        row = self.row_at(float(event.x), float(event.y))
        if row < 0:
            return
        self.highlight(np.array([row]))
        self._on_point(row)

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
