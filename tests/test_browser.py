"""One check in a real browser: Voilà serves the explorer notebook (08) over a demo run, headless
Chromium picks a face and a bundled photo, and the face's detail figure (probabilities, votes,
Grad-CAM for the predicted and the true class) and the photo's figure appear in the page.

Skips where Chromium, its driver, Selenium or Voilà are missing (``.ci/run`` installs them).
The screenshot goes to ``build/test-artifacts/`` (ignored by git; demo faces are synthetic).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "build" / "test-artifacts"

selenium = pytest.importorskip("selenium")
pytest.importorskip("voila")
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="Chromium and chromedriver are not installed"),
]

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dropdown(driver, label: str):
    """The <select> of the ipywidgets Dropdown whose description is ``label``."""
    xpath = f"//div[contains(@class, 'widget-dropdown')][label[normalize-space()='{label}']]//select"
    return driver.find_element(By.XPATH, xpath)


def _image_sources(driver) -> set[str]:
    return {img.get_attribute("src") for img in driver.find_elements(By.CSS_SELECTOR, "img")}


def _wait_for_new_image(driver, before: set[str], timeout: float) -> tuple[str, float]:
    """The first image source not in ``before`` (a figure drawn after the selection), and the
    seconds it took to appear."""
    t0 = time.time()
    new = WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: list(_image_sources(d) - before))
    return new[0], time.time() - t0


@pytest.fixture
def voila_explorer(demo_run, tmp_path):
    """Notebook 08 with its parameters set to the demo run, served by Voilà on a free port."""
    import papermill

    notebook = tmp_path / "08_inceleme.ipynb"
    papermill.execute_notebook(ROOT / "notebooks" / "08_inceleme.ipynb", notebook, prepare_only=True,
                               parameters={"run_dir": str(demo_run), "grid_size": 8, "detector": "haar"})
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "FER_BATCH"}   # interactive: the widgets are live
    log = open(tmp_path / "voila.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "voila", notebook.name, "--no-browser", f"--port={port}",
                             "--Voila.ip=127.0.0.1", "--VoilaConfiguration.show_tracebacks=True"],
                            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None:
                pytest.fail(f"Voilà exited ({proc.returncode}): {(tmp_path / 'voila.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/", tmp_path / "voila.log"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def chromium():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # Voilà executes the notebook while it streams the page: don't block in get() until it is done
    # (the driver's own HTTP timeout would fire first); wait for the widgets instead.
    options.page_load_strategy = "none"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,3000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_explorer_in_a_browser_shows_a_selected_faces_gradcam(voila_explorer, chromium):
    url, log = voila_explorer
    chromium.get(url)
    # Voilà runs the whole notebook before it shows the widgets: the face list fills once the
    # first grid is drawn.
    try:
        WebDriverWait(chromium, 240, poll_frequency=0.5).until(
            lambda d: len(Select(_dropdown(d, "Yüz")).options) >= 2)
    except Exception:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        chromium.save_screenshot(str(ARTIFACTS / "explorer_failed.png"))
        pytest.fail(f"the explorer's face list never filled; Voilà log:\n{log.read_text()[-3000:]}")
    # The filter widgets, with Turkish labels, are on the page.
    for label in ("Gerçek", "Tahmin", "Sonuç", "Sırala", "Örnek"):
        assert _dropdown(chromium, label).is_displayed(), label

    # Select the second face: its detail figure (Grad-CAM of the predicted and the true class) appears.
    before = _image_sources(chromium)
    faces = Select(_dropdown(chromium, "Yüz"))
    faces.select_by_index(1)
    src, seconds = _wait_for_new_image(chromium, before, timeout=60)
    assert src.startswith("data:image/png;base64,")
    detail = chromium.find_element(By.CSS_SELECTOR, f"img[src='{src}']")
    assert detail.size["width"] > 300      # the side-by-side detail figure, not an icon
    print(f"detail figure after {seconds:.2f} s (browser round trip, Grad-CAM computed on demand)")

    # A bundled example photo: its faces, probabilities and Grad-CAM overlay appear below the picker.
    # (The same figure is already on the page, drawn for every bundled photo when the notebook ran,
    # so look inside the picker's own output area.)
    photo_area = "//div[contains(@class, 'widget-vbox')][.//label[normalize-space()='Örnek']]//img"
    assert not chromium.find_elements(By.XPATH, photo_area)
    Select(_dropdown(chromium, "Örnek")).select_by_index(1)
    photo = WebDriverWait(chromium, 60, poll_frequency=0.1).until(lambda d: d.find_elements(By.XPATH, photo_area))
    assert photo[0].get_attribute("src").startswith("data:image/png;base64,")
    assert photo[0].size["width"] > 300

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert chromium.save_screenshot(str(ARTIFACTS / "explorer_voila.png"))
    assert "Traceback" not in chromium.find_element(By.TAG_NAME, "body").text
