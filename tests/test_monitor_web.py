"""The web dashboard against firmware in QEMU, opened in headless Chromium (selenium + chromedriver).

The page must show the board, a rising inference count and a latency chart, in two tabs at once;
closing the page must not stop recording; killing QEMU must show "disconnected" within 2 s, and
restarting it on the same port must reconnect. Screenshots go into the session folder.
"""

from __future__ import annotations

import json
import shutil
import urllib.request

import pytest

from helpers import QEMU_BOARD as BOARD
from tinyedge.monitor import Monitor, read_records
from tinyedge.monitor.web import DashboardServer, dashboard_html
from tinyedge.runners import deploy

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-quic", "--window-size=1400,1000"]


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("chromium and chromedriver are not installed "
                    "(apt-get install --no-install-recommends chromium chromium-driver)")
    return browser, driver


@pytest.fixture
def browser(tmp_path):
    binary, driver_path = _chromium()
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    from selenium.webdriver.chrome.options import Options  # noqa: PLC0415  (optional: only the browser test)
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415  (optional: only the browser test)

    opts = Options()
    opts.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    opts.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=opts, service=Service(driver_path))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def firmware(digits_tflite, pio_core, tmp_path_factory):
    """The digits model deployed to the QEMU board (generate + pio build + QEMU), once per module."""
    with deploy(digits_tflite, BOARD, tmp_path_factory.mktemp("monitor-web-fw") / "proj", core_dir=pio_core) as dep:
        yield dep


@pytest.mark.slow
def test_web_dashboard_in_chromium(firmware, digits_tflite, browser, tmp_path):
    from selenium.webdriver.common.by import By  # noqa: PLC0415  (optional: only the browser test)
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415  (optional: only the browser test)

    session = tmp_path / "session"
    qemu = firmware.runner
    qemu.start(firmware.project.path)  # a fresh boot of the firmware
    port = qemu.port
    mon = Monitor(qemu.url, record_dir=session, model=digits_tflite).start()
    web = DashboardServer(mon).start()
    try:
        def text(el_id: str) -> str:
            return browser.find_element(By.ID, el_id).get_attribute("textContent").strip()

        def wait(cond, timeout: float = 20.0):
            return WebDriverWait(browser, timeout, poll_frequency=0.05).until(lambda d: cond())

        browser.get(web.url)
        wait(lambda: text("board").startswith(BOARD))
        assert text("status") == "connected"
        first = int(text("count"))
        wait(lambda: int(text("count")) > first + 100)  # the inference count rises live
        # the latency chart: an SVG polyline the page drew from the recent latencies
        points = browser.find_element(By.ID, "latency-line").get_attribute("points").split()
        assert len(points) >= 2
        assert text("p50") not in ("", "n/a")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#hist-chart rect")) == 10
        assert text("sha").endswith(f"matches {digits_tflite.name}")
        browser.save_screenshot(str(session / "dashboard.png"))

        # a second tab sees the same state
        tab1 = browser.current_window_handle
        browser.switch_to.new_window("tab")
        browser.get(web.url)
        wait(lambda: text("board").startswith(BOARD) and int(text("count")) > 0)
        assert text("board") == f"{BOARD} (emulated)"
        seen_by_tab2 = int(text("count"))
        browser.switch_to.window(tab1)
        wait(lambda: int(text("count")) >= seen_by_tab2)

        # the download links serve the session files while recording
        with urllib.request.urlopen(web.url + "files/records.jsonl") as r:
            rows = [json.loads(line) for line in r.read().decode().splitlines()]
        assert rows and rows[0]["index"] == 0 and "latency_ms" in rows[0]
        with urllib.request.urlopen(web.url + "files/report.json") as r:
            assert json.loads(r.read())["board"] == BOARD

        # closing the page does not stop recording
        for handle in browser.window_handles:
            browser.switch_to.window(handle)
            browser.get("about:blank")
        before = mon.state.snapshot()["total"]
        mon.wait_for(lambda s: s["total"] > before + 100, timeout=20)
        browser.switch_to.window(tab1)
        browser.get(web.url)
        wait(lambda: text("status") == "connected")

        # the page's pause button pauses the monitor (for every tab), and resumes it
        browser.find_element(By.ID, "pause").click()
        wait(lambda: text("status") == "paused" and text("pause") == "resume")
        assert mon.state.paused
        browser.find_element(By.ID, "pause").click()
        wait(lambda: text("status") == "connected")

        # unplug: QEMU goes away -> "disconnected" within 2 s
        qemu.stop()
        WebDriverWait(browser, 2.0, poll_frequency=0.05).until(lambda d: text("status") == "disconnected")
        browser.save_screenshot(str(session / "dashboard-disconnected.png"))
        # ... and it comes back on the same port -> reconnected, counting again
        qemu.start(firmware.project.path)
        assert qemu.port == port
        wait(lambda: text("status") == "connected" and text("reconnects") == "1")
        after = int(text("count"))
        wait(lambda: int(text("count")) > after + 100)
        browser.save_screenshot(str(session / "dashboard-reconnected.png"))
    finally:
        web.stop()
        mon.stop()
        qemu.stop()
    records = read_records(session)
    assert len(records) == mon.state.snapshot()["total"]
    assert [r["index"] for r in records] == list(range(len(records)))  # one sequence across the reconnect
    report = json.loads((session / "report.json").read_text())
    assert report["link"]["reconnects"] == 1 and report["samples"] == len(records)
    for name in ("dashboard.png", "dashboard-disconnected.png", "dashboard-reconnected.png"):
        assert (session / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshots in {session}")


@pytest.mark.unit
def test_page_is_self_contained():
    """Nothing is fetched from anywhere else: no external URLs in src/href, no CDN."""
    page = dashboard_html().decode()
    assert "<script src" not in page and "<link" not in page
    assert "http://" not in page.replace('"http://www.w3.org/2000/svg"', "") and "https://" not in page
