"""The clicked sample as the Label page shows it: input (the message for text data),
reconstruction, labels, both classifiers' probabilities, nearest labelled neighbours."""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from ssvae.entrypoints.dashboard.viewmodels.label import SampleDetail, most_probable
from ssvae.entrypoints.dashboard.widgets import message_html, sample_html

SHOWN_PROBABILITIES = 10  # more classes than this: the most probable ones


def probability_bars(
    names: tuple[str, ...], probs: Any, title: str, limit: int = SHOWN_PROBABILITIES
) -> str:
    """A small HTML bar chart of class probabilities: every class, or with more than `limit`
    classes the `limit` most probable, most probable first."""
    values = np.asarray(probs, np.float64)
    note = f"<br><small>top {limit} of {len(names)}</small>" if len(names) > limit else ""
    rows = "".join(
        f'<tr><td style="padding-right:6px">{html.escape(names[i])}</td><td style="width:160px">'
        f'<div style="background:#4a7ab5;height:10px;width:{max(values[i], 0.0) * 100:.1f}%">'
        f'</div></td><td style="padding-left:6px">{values[i]:.2f}</td></tr>'
        for i in most_probable(values, limit).tolist()
    )
    return f"<b>{html.escape(title)}{note}</b><table style='font-size:12px'>{rows}</table>"


def detail_html(detail: SampleDetail, kind: str) -> str:
    """The clicked sample: input (the message for text data), reconstruction, labels, both
    classifiers, neighbours."""
    parts = [
        f'<div class="ssvae-detail" data-serial="{detail.serial}">',
        f"<h3 style='margin:0'>serial {detail.serial}</h3>",
    ]
    if detail.text is not None:
        parts.append(message_html(detail.text, detail.extras))
    else:
        parts += [
            "<div style='display:flex;gap:12px'>",
            f"<div>sample<br>{sample_html(detail.x, kind)}</div>",
        ]
        if detail.reconstruction is not None:
            parts.append(f"<div>reconstruction<br>{sample_html(detail.reconstruction, kind)}</div>")
        parts.append("</div>")
    user = detail.user_label if detail.user_label is not None else "-"
    truth = detail.true_label if detail.true_label is not None else "unknown"
    parts.append(
        f"<p>label: <b class='ssvae-user-label'>{html.escape(user)}</b> · true: "
        f"{html.escape(truth)} · predicted: {html.escape(detail.predicted)} "
        f"({detail.certainty:.2f})</p>"
    )
    parts.append("<div style='display:flex;gap:16px'>")
    parts.append(probability_bars(detail.class_names, detail.class_probs, "q(y|x)"))
    if detail.tau_probs is not None:
        parts.append(probability_bars(detail.class_names, detail.tau_probs, "tau classifier"))
    parts.append("</div>")
    if detail.neighbours:
        items = "".join(
            f"<li>serial {n.serial}: {html.escape(n.class_name)} (distance {n.distance:.2f})</li>"
            for n in detail.neighbours
        )
        parts.append(f"<b>nearest labelled</b><ul style='margin:0'>{items}</ul>")
    else:
        parts.append("<i>no labelled neighbour yet</i>")
    parts.append("</div>")
    return "".join(parts)
