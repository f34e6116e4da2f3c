"""The dashboard on a text workspace, as a person uses it: the real server started on a CSV of
400 Loghub messages (25 message templates, so class names, not keys), the workspace created
from its start page, Debian's chromium driven by Playwright, the real label file on disk.

One workspace, server and page serve the module; the tests run in file order.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reference_data import LOGHUB_MESSAGES
from test_dashboard_browser import (
    PIXEL_JS,
    SCREENSHOTS,
    SLOW,
    _wait_until,
    chromium_page,
    labels_on_disk,
    serving,
)

pytestmark = pytest.mark.browser

SSVAE = str(Path(sys.executable).parent / "ssvae")
MODEL_ID = "text-e2e"
TEMPLATES = 25  # more than 20 classes: the class picker, no buttons
PER_TEMPLATE = 16
SEARCHED = "packetresponder"  # in every message of template HDFS:E10, in no other
SEARCHED_CLASS = "HDFS:E10"


@pytest.fixture(scope="module")
def messages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, dict[str, str]]]:
    """A CSV of 16 messages of each of 25 Loghub templates, and its rows by id."""
    with LOGHUB_MESSAGES.open(newline="", encoding="utf-8") as handle:
        by_template: dict[str, list[dict[str, str]]] = defaultdict(list)
        for row in csv.DictReader(handle):
            by_template[row["event_id"]].append(row)
    common = [name for name in sorted(by_template) if len(by_template[name]) >= PER_TEMPLATE]
    chosen = common[::4][:TEMPLATES]
    assert SEARCHED_CLASS in chosen and len(chosen) == TEMPLATES
    rows = [row for name in chosen for row in by_template[name][:PER_TEMPLATE]]
    path = tmp_path_factory.mktemp("text-data") / "messages.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["id", "text", "system", "event_id"])
        writer.writeheader()
        writer.writerows({key: row[key] for key in writer.fieldnames} for row in rows)
    return path, {int(row["id"]): row for row in rows}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, messages: tuple[Path, dict[int, dict[str, str]]]
) -> Iterator[tuple[str, Path]]:
    """`ssvae dashboard` on the messages (labels: the template), no workspace yet: the first
    test creates it from the start page. Yields the start page's URL and the workspace."""
    root = tmp_path_factory.mktemp("dashboard-text")
    artifacts = root / "artifacts"
    env = {**os.environ, "HOME": str(root)}
    model = artifacts / "models" / MODEL_ID
    arguments = ["--input", str(messages[0])]
    arguments += ["--label-column", "event_id", "--embedder-dim", "32"]
    arguments += ["--cache-dir", str(root / "cache"), "--artifacts", str(artifacts)]
    with serving(arguments, root, env, SLOW / 1000, "the dashboard server") as url:
        yield url, model


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A chromium page with a fresh profile."""
    with chromium_page(tmp_path_factory.mktemp("chromium-profile-text")) as browser_page:
        yield browser_page


def _pool_serials(model: Path) -> list[int]:
    """The pool's serials, read through the same container as the dashboard."""
    from ssvae.application.bootstrap import bootstrap
    from ssvae.application.settings import AppSettings
    from ssvae.application.workspace import workspace_settings

    app = bootstrap(AppSettings(artifacts_dir=model.parent.parent))
    workspace = app.workspace_service().open(model)
    opened = bootstrap(workspace_settings(workspace, model.parent.parent))
    return [int(s) for s in opened.workspace_service().pool_serials(workspace)]


def test_the_start_page_creates_a_text_workspace_with_the_text_preset(
    server: tuple[str, Path], page: Any
) -> None:
    url, model = server
    page.goto(url)
    page.locator(".ssvae-no-models").wait_for()
    page.get_by_label("model id (optional)").fill(MODEL_ID)
    page.get_by_role("button", name="create model").click()
    page.wait_for_url(f"**?model={MODEL_ID}", timeout=SLOW)
    page.wait_for_selector("canvas", timeout=SLOW)
    spec = (model / "spec.yaml").read_text()
    assert "likelihood: gaussian" in spec and "encoder_type: dense" in spec
    metadata = json.loads((model / "metadata.json").read_text())
    assert metadata["preset"] == "text_mixture_k20"
    assert (model / "embedder").is_dir()  # the tfidf fitted on the pool, saved with it


def test_a_clicked_point_shows_its_message_and_the_class_picker_labels_it(
    server: tuple[str, Path], page: Any, messages: tuple[Path, dict[int, dict[str, str]]]
) -> None:
    url, model = server
    rows = messages[1]
    page.goto(f"{url}?model={MODEL_ID}")
    page.wait_for_selector("canvas", timeout=SLOW)
    pool = len(_pool_serials(model))
    page.locator(".ssvae-map-caption").get_by_text(str(pool)).wait_for()
    point = page.evaluate(PIXEL_JS, [pool // 3])
    page.mouse.click(point["x"], point["y"])
    detail = page.locator(".ssvae-detail")
    detail.wait_for()
    serial = int(detail.get_attribute("data-serial"))
    assert detail.locator(".ssvae-text").inner_text().strip() == rows[serial]["text"].strip()
    assert rows[serial]["system"] in detail.locator(".ssvae-extras").inner_text()
    assert page.get_by_role("button", name="[0]").count() == 0  # 25 classes: no digit keys
    truth = rows[serial]["event_id"]
    picker = page.get_by_label("find a class (Enter labels the point)")
    picker.click()
    picker.press_sequentially(truth.lower(), delay=30)
    page.locator(".bk-menu").get_by_text(truth, exact=True).wait_for()
    picker.press("Enter")
    _wait_until(lambda: labels_on_disk(model).get(serial) == truth, 30, "the label in the file")
    page.locator(".ssvae-counters").get_by_text("1 of 25 classes labelled").wait_for()
    detail.locator(".ssvae-user-label").get_by_text(truth).wait_for()
    page.screenshot(path=str(SCREENSHOTS / "label-text.png"))


def test_a_search_selects_every_matching_message_for_one_group_label(
    server: tuple[str, Path], page: Any, messages: tuple[Path, dict[int, dict[str, str]]]
) -> None:
    _, model = server
    rows = messages[1]
    expected = {s for s in _pool_serials(model) if SEARCHED in rows[s]["text"].lower()}
    assert expected
    before = labels_on_disk(model)
    search = page.get_by_label("search messages")
    search.fill(SEARCHED.upper())
    search.press("Enter")
    count = page.locator(".ssvae-group-count")
    count.wait_for()
    assert int(count.inner_text()) == len(expected)
    assert page.locator(".ssvae-review-text").count() == min(len(expected), 48)  # for review
    page.get_by_label("class for the group").select_option(SEARCHED_CLASS)
    page.get_by_role("button", name="label group…").click()
    summary = f"label {len(expected)} points as '{SEARCHED_CLASS}'"
    page.locator(".ssvae-confirm-text").get_by_text(summary).wait_for()
    page.screenshot(path=str(SCREENSHOTS / "label-text-search.png"))
    page.get_by_role("button", name="confirm").click()
    after = _wait_until(
        lambda: (found := labels_on_disk(model)) and expected <= set(found) and found,
        30,
        "the group's labels in the file",
    )
    assert {after[s] for s in expected} == {SEARCHED_CLASS}
    page.keyboard.press("Control+z")  # the focus is on the confirm button, not in a text box
    _wait_until(lambda: labels_on_disk(model) == before, 30, "the whole group undone")


def test_keys_pressed_in_the_match_list_label_the_chosen_match(
    server: tuple[str, Path], page: Any
) -> None:
    _, model = server
    before = labels_on_disk(model)
    search = page.get_by_label("search messages")
    search.fill("")
    search.fill(SEARCHED)
    search.press("Enter")
    page.get_by_label("class for the group").select_option(SEARCHED_CLASS)
    page.get_by_role("button", name="label group…").click()
    page.get_by_role("button", name="confirm").click()
    grouped = _wait_until(
        lambda: (found := labels_on_disk(model)) != before and found, 30, "the group's labels"
    )
    matches = page.locator(".ssvae-matches select")
    matches.select_option(index=1)
    detail = page.locator(".ssvae-detail")
    group = {s for s, c in grouped.items() if before.get(s) != c}
    serial = int(
        _wait_until(
            lambda: (shown := int(detail.get_attribute("data-serial"))) in group and str(shown),
            10,
            "the chosen match's detail",
        )
    )
    matches.focus()
    page.keyboard.press("ArrowDown")  # stays with the list: the next match is shown
    shown = int(
        _wait_until(
            lambda: (now := int(detail.get_attribute("data-serial"))) != serial and str(now),
            10,
            "the next match",
        )
    )
    assert shown in group
    assert labels_on_disk(model) == grouped
    page.keyboard.press("Delete")  # focus still in the list: the shown match loses its label
    _wait_until(lambda: shown not in labels_on_disk(model), 30, "the chosen match unlabelled")
    assert labels_on_disk(model) == {s: c for s, c in grouped.items() if s != shown}
    page.keyboard.press("Control+z")
    _wait_until(lambda: labels_on_disk(model) == grouped, 30, "the removal undone")
    page.keyboard.press("Control+z")
    _wait_until(lambda: labels_on_disk(model) == before, 30, "the group undone")


def test_the_queue_shows_messages_and_its_picker_labels_the_framed_one(
    server: tuple[str, Path], page: Any, messages: tuple[Path, dict[int, dict[str, str]]]
) -> None:
    _, model = server
    rows = messages[1]
    page.locator(".bk-tab", has_text="Queue").first.click()
    page.get_by_role("button", name="refresh queue").click()
    first = page.locator(".ssvae-queue-item.ssvae-highlighted")
    first.wait_for()
    serial = int(first.get_attribute("data-serial"))
    assert first.locator(".ssvae-text").inner_text().strip() == rows[serial]["text"].strip()
    truth = rows[serial]["event_id"]
    picker = page.get_by_label("class for the framed sample (Enter labels it)")
    picker.click()
    picker.press_sequentially(truth.lower(), delay=30)
    page.locator(".bk-menu").get_by_text(truth, exact=True).wait_for()
    picker.press("Enter")
    _wait_until(lambda: labels_on_disk(model).get(serial) == truth, 30, "the queue's label")
    highlighted = page.locator(".ssvae-queue-item.ssvae-highlighted")
    _wait_until(lambda: int(highlighted.get_attribute("data-serial")) != serial, 10, "the next")
    page.screenshot(path=str(SCREENSHOTS / "queue-text.png"))


def test_the_novelty_colour_marks_messages_unlike_every_label(
    server: tuple[str, Path], page: Any, messages: tuple[Path, dict[int, dict[str, str]]]
) -> None:
    # 12 labels of each of 2 templates (24: enough to calibrate the 95% threshold), written
    # by the CLI; every other template is new to the labels.
    _, model = server
    rows = messages[1]
    pool = _pool_serials(model)
    by_class: dict[str, list[int]] = defaultdict(list)
    for serial in pool:
        by_class[rows[serial]["event_id"]].append(serial)
    known = sorted(by_class)[:2]
    labels = model.parent.parent / "novelty-labels.csv"
    lines = [f"{s},{name}" for name in known for s in by_class[name][:12]]
    labels.write_text("Serial,label\n" + "\n".join(lines) + "\n", encoding="utf-8")
    done = subprocess.run(
        [SSVAE, "label", "--model", str(model), "import", str(labels)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    page.locator(".bk-tab", has_text="Label").first.click()
    page.reload()
    page.wait_for_selector("canvas", timeout=SLOW)
    page.get_by_label("colour by").select_option("novelty")
    note = page.get_by_text("points are unknown: novelty above")
    note.wait_for(timeout=SLOW)
    flagged = int(note.inner_text().split(" of ")[0].replace(",", ""))
    unlabelled_new = sum(len(v) for k, v in by_class.items() if k not in known)
    assert 0 < flagged <= unlabelled_new + 4  # the unseen templates, at most a few known ones
    page.screenshot(path=str(SCREENSHOTS / "label-text-novelty.png"))
