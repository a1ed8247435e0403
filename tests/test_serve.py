"""`dp3d serve` on the shipped mini model: a real server on a free loopback port, driven through
gradio_client (the /render endpoint) and a headless Chromium (the page).

The browser part needs Debian's `chromium` and `chromium-driver` (.ci/run installs them) and is
skipped where they are missing. DP3D_SCREENSHOT=PATH saves the page with its finished render.
"""

import os
import shutil
import socket
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio")
from gradio_client import Client, handle_file  # noqa: E402

from diffportrait3d.app import RenderSettings, render  # noqa: E402
from diffportrait3d.app.samples import sample_reference  # noqa: E402
from diffportrait3d.app.web import serve  # noqa: E402

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
BASE = RenderSettings(model="mini", device="cpu", steps=4, views=4)


def video_path(answer) -> Path:
    """gradio_client answers a Video output with a path, or a dict holding it."""
    return Path(answer["video"] if isinstance(answer, dict) else answer)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = free_port()
    app = serve(BASE, "127.0.0.1", port, block=False)
    yield app, f"http://127.0.0.1:{port}/"
    app.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("serve")
    sample_reference(1, 64).save(d / "head.png")
    (d / "notes.png").write_text("this is not an image")
    return d


def test_api_render_returns_the_turntable_of_the_render_flow(server, files):
    app, url = server
    client = Client(url, verbose=False)
    frames = iio.imread(video_path(client.predict(handle_file(str(files / "head.png")), "-30:30", "0", 4, 2, 0, api_name="/render")))
    assert frames.shape == (4, 64, 64, 3)
    # the same views the application layer renders for these settings (up to H.264 loss)
    same = RenderSettings(**{**BASE.__dict__, "yaw": "-30:30", "pitch": "0", "steps": 2, "seed": 0})
    views = np.stack([np.asarray(v) for v in render(same, [files / "head.png"]).views])
    assert np.abs(frames.astype(float) - views).mean() < 6
    assert np.abs(frames[0].astype(float) - frames[-1]).mean() > 2 * np.abs(frames.astype(float) - views).mean()


def test_api_bad_upload_is_a_clear_error_and_the_server_lives_on(server, files):
    app, url = server
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match="not a readable image"):
        client.predict(handle_file(str(files / "notes.png")), "-30:30", "0", 4, 2, 0, api_name="/render")
    with pytest.raises(Exception, match="yaw expects a number or a range") as e:
        client.predict(handle_file(str(files / "head.png")), "left", "0", 4, 2, 0, api_name="/render")
    assert "--yaw" not in str(e.value)
    assert iio.imread(video_path(client.predict(handle_file(str(files / "head.png")), "0", "0", 1, 1, 0, api_name="/render"))).shape == (1, 64, 64, 3)


@pytest.mark.skipif(not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)), reason="needs Debian's chromium and chromium-driver")
def test_page_renders_in_a_browser_and_shows_bad_uploads(server, files, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    app, url = server
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1500"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        wait = WebDriverWait(driver, 45)
        driver.get(url)
        upload = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#upload input[type=file]")))
        upload.send_keys(str(files / "head.png"))
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#preview img")))  # the condition preview
        driver.find_element(By.CSS_SELECTOR, "#render").click()
        video = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#turntable video[src]")))
        wait.until(EC.text_to_be_present_in_element((By.ID, "status"), "Rendered 4 views"))
        assert video.get_attribute("src")
        if os.environ.get("DP3D_SCREENSHOT"):
            driver.execute_script("window.scrollTo(0, 0)")
            driver.save_screenshot(os.environ["DP3D_SCREENSHOT"])
        # a file that is not an image: the page says so
        driver.find_element(By.CSS_SELECTOR, "#upload button[aria-label='Clear']").click()
        upload = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#upload input[type=file]")))
        upload.send_keys(str(files / "notes.png"))
        wait.until(EC.text_to_be_present_in_element((By.ID, "status"), "not a readable image"))
    finally:
        driver.quit()


def test_page_messages_name_the_page_fields():
    from diffportrait3d.app.web import page_message
    from diffportrait3d.errors import UserError

    assert page_message(UserError("--yaw expects a number or a range a:b, got 'left'")) == "yaw expects a number or a range a:b, got 'left'"
    assert page_message(UserError("--condition-seed must be >= 0; --seed too")) == "condition seed must be >= 0; seed too"
    assert page_message(UserError("--yawning is not a flag")) == "--yawning is not a flag"
