# mypy: disable-error-code="no-untyped-call"
# (Panel and Bokeh widgets are param classes whose constructors carry no annotations.)
"""Small browser-side pieces: a page-wide key listener, the class picker and the Enter key
that leaves it, errors and samples as HTML (images as PNG data URLs, vectors as their leading
values, messages as a person reads them)."""

from __future__ import annotations

import base64
import html
import struct
import zlib
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import panel as pn
import param
from panel.custom import JSComponent

ENTER_RETURNS_FOCUS = "ssvae-enter-returns-focus"  # the class of fields Enter leaves


class KeyCatcher(JSComponent):
    """Sends every key pressed on the page (outside text fields and dropdowns) to Python as
    `pressed`. In a list box (a select with size > 1, the search's matches) the arrow, Home,
    End and page keys stay with the list; the others go to Python, so a chosen match takes a
    class key, Delete or Ctrl+Z as a clicked point does.

    `pressed` is [key, ctrl, counter]: the counter makes a repeated key a new event.
    """

    pressed = param.List(default=["", False, 0])

    # Panel waits 50 ms before handling a change from the browser (to merge bursts of
    # events); a key press is one event, and those 50 ms are half the 100 ms a label may take.
    _debounce: ClassVar[int] = 0

    _esm = """
    const NAVIGATION = ['ArrowUp', 'ArrowDown', 'ArrowLeft', 'ArrowRight', 'Home', 'End',
      'PageUp', 'PageDown'];
    export function render({ model, el }) {
      let counter = 0;
      const handler = (event) => {
        const path = event.composedPath ? event.composedPath() : [event.target];
        const select = (node) => node && node.tagName === 'SELECT';
        const listBox = (node) => select(node) && (node.multiple || node.size > 1);
        const typing = path.some((node) => node && (node.tagName === 'INPUT' ||
          node.tagName === 'TEXTAREA' || (select(node) && !listBox(node)) ||
          node.isContentEditable));
        if (typing || ['Shift', 'Control', 'Alt', 'Meta'].includes(event.key)) return;
        // A list box (the search's matches) keeps its own navigation; every other key labels.
        if (path.some(listBox) && NAVIGATION.includes(event.key)) return;
        const ctrl = event.ctrlKey || event.metaKey;
        if (ctrl && event.key.toLowerCase() !== 'z') return;  // leave the browser's shortcuts
        counter += 1;
        window.ssvaeLastKeyAt = performance.now();
        model.pressed = [event.key, ctrl, counter];
        if (ctrl || event.key === 'Delete' || event.key === 'Backspace' ||
            event.key.startsWith('Arrow')) event.preventDefault();
      };
      document.addEventListener('keydown', handler);
      model.on('remove', () => document.removeEventListener('keydown', handler));
      el.style.display = 'none';
    }
    """


class EnterReturnsFocus(JSComponent):
    """After Enter in a field marked with the class ENTER_RETURNS_FOCUS (the message search,
    the class pickers), the field gives the focus back to the page: Enter has done the
    field's work, and the page's keys (class keys, Delete, Ctrl+Z) would otherwise type into
    the field instead of labelling. Listens on the whole document; draws nothing."""

    _esm = """
    export function render({ model, el }) {
      const handler = (event) => {
        if (event.key !== 'Enter') return;
        const path = event.composedPath ? event.composedPath() : [event.target];
        const marked = path.some((node) => node && node.classList &&
          node.classList.contains('ENTER_RETURNS_FOCUS'));
        const field = path.find((node) => node && node.tagName === 'INPUT');
        // After the field's own Enter handling (a picker chooses its match on keyup).
        if (marked && field) setTimeout(() => field.blur(), 0);
      };
      document.addEventListener('keyup', handler);
      model.on('remove', () => document.removeEventListener('keyup', handler));
      el.style.display = 'none';
    }
    """.replace("ENTER_RETURNS_FOCUS", ENTER_RETURNS_FOCUS)


def picker_classes(names: Sequence[str]) -> dict[str, Any]:
    """The class picker's options and prompt for the classes `names` (set again when the
    labels gain a class)."""
    return {"options": list(names), "placeholder": f"type part of one of {len(names)} class names"}


def class_picker(label: str, names: Sequence[str], **params: Any) -> pn.widgets.AutocompleteInput:
    """A field that finds a class by any part of its name, any case, where keys cannot name
    every class; Enter chooses the match and gives the focus back to the page's keys."""
    return pn.widgets.AutocompleteInput(
        label=label,
        case_sensitive=False,
        search_strategy="includes",
        restrict=True,
        min_characters=1,
        width=300,
        css_classes=[ENTER_RETURNS_FOCUS],
        **picker_classes(names),
        **params,
    )


def error_html(error: Exception) -> str:
    """A refused action's one-line reason, marked as an error."""
    return f"<span class='ssvae-error'>{html.escape(str(error))}</span>"


def text_of(widget: Any) -> str:
    """A text widget's value, '' when empty."""
    return str(widget.value or "")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def png_bytes(image: npt.NDArray[Any], scale: int = 1) -> bytes:
    """A greyscale PNG of `image` (height, width[, 1]) with values in [0, 1], each pixel
    repeated `scale` times so that small digits stay sharp when shown large."""
    pixels = np.asarray(image, np.float64)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim != 2:
        raise ValueError(f"an image is (height, width) or (height, width, 1), got {pixels.shape}")
    grey = np.clip(np.nan_to_num(pixels) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    grey = np.repeat(np.repeat(grey, scale, axis=0), scale, axis=1)
    height, width = grey.shape
    raw = b"".join(b"\x00" + grey[row].tobytes() for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw, 6))
        + _png_chunk(b"IEND", b"")
    )


def png_data_url(image: npt.NDArray[Any], scale: int = 4) -> str:
    """`png_bytes` as a data URL for an <img> tag."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image, scale)).decode("ascii")


def sample_html(x: Any, kind: str, scale: int = 5) -> str:
    """An image as a PNG, a vector as its leading values."""
    array = np.asarray(x)
    if kind == "image" and array.ndim >= 2:
        return f'<img src="{png_data_url(array, scale)}" style="image-rendering:pixelated">'
    shown = ", ".join(f"{v:.3g}" for v in array.reshape(-1)[:12])
    more = ", ..." if array.size > 12 else ""
    return f"<code>[{shown}{more}]</code> ({array.size} values)"


def message_html(text: str, extras: tuple[tuple[str, str], ...] = (), *, size: int = 14) -> str:
    """A message as a person reads it (whitespace kept, wrapped), with its extra columns."""
    parts = [
        f'<div class="ssvae-text" style="white-space:pre-wrap;word-break:break-word;'
        f"font-family:ui-monospace,monospace;font-size:{size}px;background:#f6f6f6;"
        f'padding:6px;border-left:4px solid #4a7ab5">{html.escape(text)}</div>'
    ]
    if extras:
        rows = "".join(
            f"<tr><td style='color:#666;padding-right:8px'>{html.escape(name)}</td>"
            f"<td>{html.escape(value)}</td></tr>"
            for name, value in extras
        )
        parts.append(f"<table class='ssvae-extras' style='font-size:12px'>{rows}</table>")
    return "".join(parts)
