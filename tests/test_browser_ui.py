"""The Dagster UI in a real browser (Debian's Chromium, Playwright): a tiny calibrator
and science group really converted, calibrated, imaged and measured through the real
jobs, a real dagster-webserver over that instance, and what an operator sees.

Screenshots of every page looked at are kept under the module's temporary directory.
"""

from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from benchmarks.dagster_ui import chromium, time_until_visible, webserver
from tests.browser_platform import PreparedPlatform, platform_env, prepare

pytestmark = pytest.mark.slow

# The stated answer time of the UI: an asset page shows its latest materialisation
# within this many seconds of being asked for, cold (new browser context), on CI.
PAGE_BOUND_S = 10.0
# Graph nodes: the asset name box of Dagster 1.13's AssetNode (minimal and full forms).
NODE_NAMES = "foreignObject [class*='AssetNode_assetName']"


@dataclass
class UI:
    """A served instance and a browser on it."""

    url: str
    browser: object
    prepared: PreparedPlatform
    artefacts: Path
    errors: list[str] = field(default_factory=list)

    def page(self, path: str):
        """A fresh context (cold cache) on `path`; the caller closes it with the context.
        GraphQL errors the page logs are collected for `assert_clean`."""
        self.errors.clear()
        context = self.browser.new_context(viewport={"width": 1600, "height": 1000})
        page = context.new_page()
        page.on("console", lambda message: self.errors.append(message.text)
                if "GraphQL error" in message.text else None)
        page.goto(self.url + path)
        return page

    def assert_clean(self, page) -> None:
        """No GraphQL error was logged or shown (the UI's red "Unexpected GraphQL error")."""
        assert self.errors == [], self.errors
        assert page.get_by_text("Unexpected GraphQL error").count() == 0
        page.context.close()

    def shot(self, page, name: str) -> None:
        """Keep a screenshot as a test artefact."""
        page.screenshot(path=str(self.artefacts / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory, tiny_groups) -> UI:
    base = tmp_path_factory.mktemp("browser_ui")
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("CONTIMG_")]:
            patch.delenv(key)
        for key, value in platform_env(base).items():
            if key.startswith("CONTIMG_"):
                patch.setenv(key, value)
        prepared = prepare(base, tiny_groups)
    # Evaluating a sensor leaves SIGTERM ignored when SIGINT is (tests/conftest.py):
    # the webserver would inherit that and outlive terminate().
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    artefacts = base / "screenshots"
    artefacts.mkdir()
    with webserver(prepared.dagster_home, prepared.env, base / "webserver.log") as url:
        # The instance remembers that the "Join the community" dialog was seen: it
        # would otherwise cover every page of a fresh browser served from 127.0.0.1.
        assert requests.post(f"{url}/graphql", json={"query": "mutation { setNuxSeen }"},
                             timeout=30).json()["data"]["setNuxSeen"] is True
        with chromium() as browser:
            yield UI(url, browser, prepared, artefacts)


def _node_names(page) -> set[str]:
    return {name.strip() for name in page.locator(NODE_NAMES).all_inner_texts()}


def test_the_asset_graph_shows_every_asset_of_the_definitions(ui):
    from contimg_assets.definitions import defs

    defined = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    page = ui.page("/asset-groups")
    page.locator("foreignObject").get_by_text("ingest", exact=True).wait_for()  # groups, collapsed
    page.keyboard.press("Alt+e")  # the graph's "Expand all groups" shortcut
    page.locator(NODE_NAMES).filter(has_text="uvh5_group").wait_for()
    ui.shot(page, "global_lineage")
    assert _node_names(page) == defined
    assert len(defined) >= 15
    ui.assert_clean(page)


def test_a_groups_image_leads_back_to_its_raw_files_and_calibration_tables(ui):
    prepared = ui.prepared
    science, day = prepared.science, prepared.science[:10]
    page = ui.page("/assets/image?view=lineage&lineageScope=upstream&lineageDepth=10")
    page.locator(NODE_NAMES).filter(has_text="uvh5_group").wait_for()
    ui.shot(page, "image_upstream_lineage")
    # The whole upstream chain in the graph: image <- calibrated_ms <- measurement_set <- uvh5_group.
    assert {"image", "calibrated_ms", "measurement_set", "uvh5_group"} <= _node_names(page)

    # The group's image partition names the tables that calibrated it and its raw files ...
    cal_tables = prepared.image_metadata["cal_tables"]
    raw_names = prepared.image_metadata["raw_files"]
    assert len(cal_tables) == 3 and len(raw_names) == 16
    page.goto(f"{ui.url}/assets/image?view=partitions&partition={science}")
    for table in cal_tables:
        page.get_by_text(table).first.wait_for()
    for name in raw_names:
        assert page.get_by_text(name).count() >= 1, name
    ui.shot(page, "image_partition")

    # ... the group's uvh5_group partition has those raw files' full paths ...
    page.goto(f"{ui.url}/assets/uvh5_group?view=partitions&partition={science}")
    page.get_by_text("subbands_present").first.wait_for()
    page.get_by_text("[Show JSON]").first.click()  # the file list is folded
    dialog = page.get_by_role("dialog")
    dialog.get_by_text(str(prepared.incoming_dir)).first.wait_for()
    shown = dialog.inner_text()
    for name in raw_names:
        assert f'"{prepared.incoming_dir / name}"' in shown, name
    ui.shot(page, "uvh5_group_partition")

    # ... and the day's bandpass_solution partition wrote exactly those tables: the solve
    # assets are joined to a group by their table paths (no graph edge: a group's
    # dynamic partition has no Dagster mapping onto the day's and hour's time windows).
    solved = prepared.bandpass_metadata["table_paths"]
    assert set(cal_tables) <= set(solved)
    page.goto(f"{ui.url}/assets/bandpass_solution?view=partitions&partition={day}")
    for table in cal_tables:
        page.get_by_text(table).first.wait_for()
    ui.shot(page, "bandpass_solution_partition")
    hour = f"{day}-{science[11:13]}:00"
    page.goto(f"{ui.url}/assets/gain_solution?view=partitions&partition={hour}")
    for table in prepared.gain_metadata["table_paths"]:
        page.get_by_text(table).first.wait_for()
    ui.shot(page, "gain_solution_partition")
    ui.assert_clean(page)


def _check_status(page, check: str) -> str:
    """The status under a check's name in the Checks tab's list (the list comes first on
    the page; each name is rendered twice, once to measure it for truncation)."""
    found = re.search(rf"^{check}\n{check}\n(\w+)$", page.inner_text("body"), re.MULTILINE)
    assert found, f"{check} not listed"
    return found.group(1)


def test_a_failed_check_shows_as_failed(ui):
    # fast_disk_free failed with ERROR (its threshold above any disk's free space) ...
    page = ui.page("/assets/storage_usage?view=checks")
    page.get_by_text("Evaluation result").wait_for()
    ui.shot(page, "storage_usage_checks")
    assert _check_status(page, "fast_disk_free") == "Failed"
    assert _check_status(page, "tmpfs_usage") == "Succeeded"
    body = page.inner_text("body")
    assert "Evaluation result\nFailed" in body and "ERROR" in body
    # ... and the science group's bandpass_age (WARN, non-blocking) on its 5-minute-old set.
    page.goto(f"{ui.url}/assets/calibrated_ms?view=checks")
    page.get_by_text("Evaluation result").wait_for()
    ui.shot(page, "calibrated_ms_checks")
    assert _check_status(page, "bandpass_age") == "Failed"
    for passed in ("group_flagging", "calibrator_flux_scale", "gain_age"):
        assert _check_status(page, passed) == "Succeeded", passed
    ui.assert_clean(page)


def test_the_asset_page_answers_within_the_stated_time(ui):
    """Cold (a new browser context each time): from asking for the page until the
    content an operator came for is painted."""
    science = ui.prepared.science
    figures = {}
    for name, path, shown in (
            ("image_asset_page", "/assets/image", lambda p: p.get_by_text(science, exact=True)),
            ("image_partition_page", f"/assets/image?view=partitions&partition={science}",
             lambda p: p.get_by_text("cal_tables", exact=True)),
            ("global_lineage", "/asset-groups",
             lambda p: p.locator("foreignObject").get_by_text("ingest", exact=True))):
        context = ui.browser.new_context(viewport={"width": 1600, "height": 1000})
        page = context.new_page()
        figures[name] = round(time_until_visible(page, ui.url + path, shown), 2)
        ui.shot(page, f"timed_{name}")
        context.close()
    print(f"UI time to first meaningful paint (s, bound {PAGE_BOUND_S}): {figures}")
    assert all(seconds <= PAGE_BOUND_S for seconds in figures.values()), figures
