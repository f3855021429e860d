"""The review board in a real browser (issue 14): Debian's chromium driven by Playwright
against a live `scenelog serve`; the gate cell follows commands run by other processes.

Set SCENELOG_WRITE_SCREENSHOT=1 to also write docs/board.png (the README's picture).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventstore import SceneVersionStore
from tests.helpers import DEADLINE, REPO, child_env, scene

sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (the test extra)")
pytest.importorskip("litestar", reason="scenelog serve needs the serve extra (litestar)")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (CI installs Debian's: apt-get install chromium)"
)
FLAGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LIVE = 2_000  # ms: a command in another process shows on the board within this
FLIP = "ep_001_BATCH_001"


def _build(root: Path) -> None:
    store = SceneVersionStore("show", 1, root=root)
    for number in range(1, 5):
        batch_id = f"ep_001_BATCH_{number:03d}"
        store.write_scene_candidate(batch_id, scene(batch_id, shots=3), actor="layout@farm")
        store.write_scene_candidate(
            batch_id, scene(batch_id, shots=4, tag=" (script v2)"), actor="layout@farm"
        )
    store.conform("ep_001_BATCH_002", 2, actor="sup.ana", reason="approved in dailies")
    store.conform("ep_001_BATCH_004", 2, actor="sup.ana", reason="approved in dailies")
    store.mark_derived("ep_001_BATCH_004", 2, actor="boards@farm")
    store.revert("ep_001_BATCH_004", 1, actor="sup.ana", reason="v2 broke continuity")


def _scenelog(root: Path, *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "projections", "--root", str(root), "--project", "show", *args],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        env=child_env(SCENELOG_ACTOR="sup.ana"),
        cwd=str(REPO),
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture
def board_url(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "store"
    _build(root)
    serve = ["serve", "--port", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "projections", "--root", str(root), "--project", "show", *serve],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=str(REPO),
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("scenelog: serving http://127.0.0.1:"), line
        yield line.split()[2], root
    finally:
        proc.terminate()
        proc.wait(timeout=DEADLINE)


def test_issue14_board_gate_cell_follows_conform_and_derive_live(
    board_url: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = board_url
    expect = sync_api.expect
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 640})
            page.set_default_timeout(DEADLINE * 1000 / 4)
            page.goto(url)
            gate = page.locator(f"#gate-{FLIP}")
            expect(gate).to_have_text("fresh")
            expect(page.locator("#gate-ep_001_BATCH_002")).to_have_text("blocked")
            expect(page.locator("#row-ep_001_BATCH_002")).to_have_class("blocked")
            expect(page.locator("#live")).to_have_text("live")  # subscribed to the stream

            _scenelog(root, "conform", FLIP, "2", "--reason", "director approved")
            expect(gate).to_have_text("blocked", timeout=LIVE)
            expect(page.locator(f"#row-{FLIP}")).to_have_class("blocked")

            page.locator(f"#row-{FLIP}").click()  # the batch's timeline
            expect(page.locator("#timeline tbody tr")).to_have_count(3)
            expect(page.locator("#timeline tbody tr").last).to_contain_text("v1 → v2")

            _scenelog(root, "derived", FLIP, "2")
            expect(gate).to_have_text("fresh", timeout=LIVE)
            expect(page.locator(f"#row-{FLIP}")).to_have_class("fresh selected")
            expect(page.locator("#timeline tbody tr")).to_have_count(4, timeout=LIVE)

            page.locator("#diff-a").select_option("1")
            page.locator("#diff-b").select_option("2")
            page.locator("#diff-form button").click()  # the shot-level diff
            expect(page.locator("#diff")).to_contain_text("sh003")
            expect(page.locator("#error")).to_be_hidden()

            shot = tmp_path / "board.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            if os.environ.get("SCENELOG_WRITE_SCREENSHOT") == "1":
                shutil.copyfile(shot, REPO / "docs" / "board.png")
        finally:
            browser.close()
