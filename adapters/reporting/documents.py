"""A tiny document model rendered both as Markdown and as self-contained HTML.

The report is built once as blocks (headings, paragraphs, lists, tables, images); each
renderer writes them out, so REPORT.md and REPORT.html always say the same thing.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path

import attrs


@attrs.frozen
class Heading:
    text: str
    level: int = 2


@attrs.frozen
class Paragraph:
    text: str
    emphasis: bool = False


@attrs.frozen
class Bullets:
    items: tuple[str, ...]


@attrs.frozen
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    # Columns of verbatim text (log messages): no Markdown markup in them takes effect, and
    # they are left-aligned and monospaced.
    literal: tuple[int, ...] = ()


@attrs.frozen
class Image:
    path: str  # relative to the report's folder
    caption: str


Block = Heading | Paragraph | Bullets | Table | Image


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# Inside a table cell only these start markup (emphasis, code, links, HTML, entities, strike).
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\]<>~&])")


def md_literal(text: str) -> str:
    """`text` shown as it is in a Markdown table cell: every markup character escaped."""
    return _md_cell(_MARKDOWN_PUNCTUATION.sub(r"\\\1", " ".join(text.split())))


def to_markdown(blocks: Sequence[Block]) -> str:
    """The blocks as GitHub-flavoured Markdown; images link to their files."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            out.append(f"**{block.text}**" if block.emphasis else block.text)
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            aligns = [
                "---" if i == 0 or i in block.literal else "---:" for i in range(len(block.header))
            ]
            lines = [
                "| " + " | ".join(_md_cell(h) for h in block.header) + " |",
                "|" + "|".join(aligns) + "|",
            ]
            lines += [
                "| "
                + " | ".join(
                    md_literal(c) if i in block.literal else _md_cell(c) for i, c in enumerate(row)
                )
                + " |"
                for row in block.rows
            ]
            out.append("\n".join(lines))
        else:
            out.append(f"![{block.caption}]({block.path})\n\n*{block.caption}*")
    return "\n\n".join(out) + "\n"


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f2f2f2; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-style: italic; color: #555; }
.emphasis { font-weight: bold; color: #a33; }
td.literal { text-align: left; font-family: ui-monospace, monospace; font-size: 0.9em;
             white-space: pre-wrap; word-break: break-word; }
"""


def _data_uri(path: Path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"data:image/png;base64,{encoded}"


def to_html(blocks: Sequence[Block], title: str, base: Path) -> str:
    """The blocks as one HTML file; images are embedded (data URIs) from files under `base`."""
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_STYLE}</style></head><body>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{e(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            css = ' class="emphasis"' if block.emphasis else ""
            out.append(f"<p{css}>{e(block.text)}</p>")
        elif isinstance(block, Bullets):
            out.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{e(h)}</th>" for h in block.header)
            body = "".join(
                "<tr>"
                + "".join(
                    f'<td class="literal">{e(c)}</td>' if i in block.literal else f"<td>{e(c)}</td>"
                    for i, c in enumerate(row)
                )
                + "</tr>"
                for row in block.rows
            )
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        else:
            out.append(
                f'<figure><img src="{_data_uri(base / block.path)}" alt="{e(block.caption)}">'
                f"<figcaption>{e(block.caption)}</figcaption></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"
