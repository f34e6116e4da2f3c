"""Groups, the queue and the focus as a person meets them: the real server on a small MNIST
workspace made by `ssvae init`, Debian's chromium driven by Playwright, the real label file.

A lasso opens a review grid (thumbnails, a class chosen on purpose, members dropped by a
click) before anything is labelled; the queue fills itself, explains its picks and says when
its batch is done; Enter in a class picker gives the keys back to the page.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_dashboard_browser import (
    PIXEL_JS,
    SCREENSHOTS,
    SLOW,
    _wait_until,
    chromium_page,
    labels_on_disk,
    serving,
)

# About 50 s on 2 shared cores (a server and a JAX model of its own): beyond the default suite's
# budget, so `make bench` runs it (benchmarks/README.md).
pytestmark = [pytest.mark.browser, pytest.mark.slow]

SSVAE = str(Path(sys.executable).parent / "ssvae")
MODEL_ID = "groups"
POOL_SIZE = 300


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`ssvae dashboard --model` on an untrained MNIST workspace of POOL_SIZE images."""
    root = tmp_path_factory.mktemp("dashboard-groups")
    artifacts = root / "artifacts"
    env = {**os.environ, "HOME": str(root)}
    init = [SSVAE, "init", "--preset", "standard", "--num-samples", str(POOL_SIZE)]
    made = subprocess.run(
        [*init, "--id", MODEL_ID, "--artifacts", str(artifacts)],
        capture_output=True,
        text=True,
        check=False,
        cwd=root,
        env=env,
    )
    assert made.returncode == 0, made.stderr
    model = artifacts / "models" / MODEL_ID
    arguments = ["--model", str(model), "--artifacts", str(artifacts)]
    with serving(arguments, root, env, SLOW / 1000, "the dashboard server") as url:
        yield url, model


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A chromium page with a fresh profile."""
    with chromium_page(tmp_path_factory.mktemp("chromium-profile-groups")) as browser_page:
        yield browser_page


def _lasso(page: Any, centre: dict[str, float], radius: float) -> None:
    page.get_by_title("Lasso Select").first.click()
    page.mouse.move(centre["x"] + radius, centre["y"])
    page.mouse.down()
    for step in range(1, 33):
        angle = 2 * math.pi * step / 32
        page.mouse.move(
            centre["x"] + radius * math.cos(angle), centre["y"] + radius * math.sin(angle)
        )
    page.mouse.up()
    page.get_by_title("Pan").first.click()


def test_a_lasso_is_reviewed_members_dropped_and_the_rest_labelled_as_one_step(
    server: tuple[str, Path], page: Any
) -> None:
    url, model = server
    page.goto(url)
    page.wait_for_selector("canvas", timeout=SLOW)
    page.locator(".ssvae-map-caption").get_by_text(str(POOL_SIZE)).wait_for(timeout=SLOW)
    _lasso(page, page.evaluate(PIXEL_JS, [POOL_SIZE // 2]), 60)
    count = page.locator(".ssvae-group-count")
    count.wait_for()
    selected = int(count.inner_text())
    assert selected >= 3
    cards = page.locator(".ssvae-review-item")
    _wait_until(lambda: cards.count() == min(selected, 48), 10, "the review grid")
    assert page.locator(".ssvae-review-item img").count() == cards.count()  # thumbnails
    target = page.get_by_label("class for the group")
    assert target.input_value() == "(choose a class)"  # no class preset
    page.get_by_role("button", name="label group…").click()
    page.locator(".ssvae-group-prompt").get_by_text("choose the group").wait_for()
    assert labels_on_disk(model) == {}
    dropped = set()
    for _ in range(2):  # a click drops a member; the grid redraws without it
        serial = cards.first.get_attribute("data-serial")
        cards.first.click()
        _wait_until(lambda s=serial: cards.first.get_attribute("data-serial") != s, 10, "drop")
        dropped.add(int(serial))
    _wait_until(lambda: int(count.inner_text()) == selected - 2, 10, "the new count")
    target.select_option("7")
    page.get_by_role("button", name="label group…").click()
    page.locator(".ssvae-confirm-text").get_by_text(
        f"label {selected - 2} points as '7'"
    ).wait_for()
    page.screenshot(path=str(SCREENSHOTS / "label-group-review.png"))
    page.get_by_role("button", name="confirm").click()
    labels = _wait_until(lambda: labels_on_disk(model), 30, "the group's labels in the file")
    assert len(labels) == selected - 2 and set(labels.values()) == {"7"}
    assert not dropped & set(labels)
    page.keyboard.press("Control+z")
    _wait_until(lambda: labels_on_disk(model) == {}, 30, "the whole group undone in one step")
    _lasso(page, page.evaluate(PIXEL_JS, [POOL_SIZE // 3]), 60)  # cancel labels nothing
    _wait_until(lambda: cards.count() > 0, 10, "the next review grid")
    assert target.input_value() == "(choose a class)"
    page.get_by_role("button", name="cancel group").click()
    page.get_by_text("group cancelled; nothing was labelled").wait_for()
    assert labels_on_disk(model) == {}


def test_after_enter_in_the_class_picker_digit_keys_label_and_ctrl_z_undoes(
    server: tuple[str, Path], page: Any
) -> None:
    _, model = server
    point = page.evaluate(PIXEL_JS, [POOL_SIZE // 4])
    page.mouse.click(point["x"], point["y"])
    detail = page.locator(".ssvae-detail")
    detail.wait_for()
    serial = int(detail.get_attribute("data-serial"))
    picker = page.get_by_label("find a class (Enter labels the point)")
    picker.click()
    picker.press_sequentially("3", delay=30)
    page.locator(".bk-menu").get_by_text("3", exact=True).wait_for()
    picker.press("Enter")
    _wait_until(lambda: labels_on_disk(model).get(serial) == "3", 30, "the picked class")
    page.keyboard.press("5")  # the focus is back on the page: a class key, not a typed 5
    _wait_until(lambda: labels_on_disk(model).get(serial) == "5", 30, "the key's class")
    assert picker.input_value() == ""
    page.keyboard.press("Control+z")
    _wait_until(lambda: labels_on_disk(model).get(serial) == "3", 30, "the key's label undone")
    page.keyboard.press("Control+z")
    _wait_until(lambda: serial not in labels_on_disk(model), 30, "the picked label undone")


def test_the_queue_fills_itself_explains_its_picks_and_says_when_they_are_done(
    server: tuple[str, Path], page: Any
) -> None:
    _, model = server
    page.locator(".bk-tab", has_text="Queue").first.click()
    items = page.locator(".ssvae-queue-item")
    _wait_until(lambda: items.count() == 12, 30, "the strip, with no refresh pressed")
    policy = page.locator(".ssvae-queue-policy select")
    assert policy.input_value() == "cold_start"  # an untrained model
    page.locator(".ssvae-score-meaning").get_by_text("needs no trained classifier").wait_for()
    assert items.first.locator(".ssvae-runner-up").count() == 1
    page.screenshot(path=str(SCREENSHOTS / "queue-reasons.png"))
    policy.select_option("margin")  # asks at once, and warns
    page.locator(".ssvae-untrained").get_by_text("not trained yet").wait_for()
    serials = [int(s) for s in items.evaluate_all("(all) => all.map((e) => e.dataset.serial)")]
    for _ in serials:
        page.keyboard.press("1")
    _wait_until(lambda: set(serials) <= set(labels_on_disk(model)), 30, "the strip labelled")
    page.locator(".ssvae-queue-end").get_by_text("refresh queue").wait_for()
    page.screenshot(path=str(SCREENSHOTS / "queue-end.png"))
