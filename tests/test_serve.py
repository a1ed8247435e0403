"""`dp3d serve` on the shipped mini model: a real server on a free loopback port, driven through
gradio_client (the /render endpoint) and a headless Chromium (the page); the page's 3D head with a
real fit at a tiny size (32 px, 400 Gaussians, 40 steps), through the page's own function.

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

from diffportrait3d.app import RenderSettings, load_model, render  # noqa: E402
from diffportrait3d.app.lift import LiftSettings  # noqa: E402
from diffportrait3d.app.samples import sample_reference  # noqa: E402
from diffportrait3d.app.web import WebRenderer, build_app, serve  # noqa: E402
from diffportrait3d.lift import FitConfig  # noqa: E402

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
BASE = RenderSettings(model="mini", device="cpu", steps=4, views=4)
TINY_LIFT = LiftSettings(FitConfig(steps=40, gaussians=400, resolution=32), mesh_grid=32)


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
        # what was done to the upload, in the page's words (a 64-px head: too small to align, used as is)
        wait.until(EC.text_to_be_present_in_element((By.ID, "crop-note"), "the portrait: used as is (under 128 px"))
        driver.find_element(By.CSS_SELECTOR, "#render").click()
        video = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#turntable video[src]")))
        wait.until(EC.text_to_be_present_in_element((By.ID, "status"), "Rendered 4 views"))
        assert video.get_attribute("src")
        assert not driver.find_element(By.CSS_SELECTOR, "#lift input[type=checkbox]").is_selected()  # the 3D head: off by default
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


def test_page_lifts_the_views_to_a_3d_head(files, tmp_path):
    import gradio as gr
    import trimesh
    from plyfile import PlyData

    pipe = load_model(BASE)
    pipe.set_progress_bar_config(disable=True)
    app = build_app(pipe, BASE, tmp_path, TINY_LIFT)
    page = next(f for f in app.fns.values() if f.name == "page_render")
    assert [type(o) for o in page.outputs][3:5] == [gr.Model3D, gr.File]  # the viewer and the downloads are wired
    # the page's function with its inputs: upload, crop, reference camera, mode, camera path, yaw, pitch, views, condition
    # seed, steps, guidance, seed, lift
    no_progress = lambda *a, **k: None  # noqa: E731
    video, sheet, archive, model, head_files, status = page.fn(str(files / "head.png"), "none", "auto", "fast", "orbit", -60, 60,
                                                               0, 0, 8, 0, 4, 3.0, 0, True, progress=no_progress)
    assert "and lifted them to 3D" in status and "3D head: 400 Gaussians" in status, status
    ply, glb = map(Path, head_files)
    assert (ply.name, glb.name) == ("head.ply", "head.glb") and model == str(glb)
    assert ply.parent == glb.parent == Path(video).parent  # one result folder: pruned together
    assert PlyData.read(str(ply))["vertex"].count == 400
    mesh = trimesh.load(glb, force="mesh")
    # head-sized in EG3D units (the procedural heads are ~0.6 wide; the fitted volume is ~2 across)
    print(f"mesh extents {mesh.extents}, {len(mesh.vertices)} vertices; {status}")
    assert np.all(mesh.extents > 0.25) and np.all(mesh.extents < 1.0), mesh.extents
    # unticked: no 3D outputs and no 3D files; one view with the box ticked: a message in the page's words
    web = WebRenderer(pipe, BASE, tmp_path / "web", TINY_LIFT)
    plain = web.page(str(files / "head.png"), web.settings(views=2), lift=False)
    assert plain["model"] is None and plain["head_files"] is None and not list(Path(plain["video"]).parent.glob("head.*"))
    one = web.page(str(files / "head.png"), web.settings(views=1), lift=True)
    assert one["model"] is None and one["status"].startswith("**Error:** 3D head: 1 view") and "--" not in one["status"]


def test_page_messages_name_the_page_fields():
    from diffportrait3d.app.web import page_message
    from diffportrait3d.errors import UserError

    assert page_message(UserError("--yaw expects a number or a range a:b, got 'left'")) == "yaw expects a number or a range a:b, got 'left'"
    assert page_message(UserError("--condition-seed must be >= 0; --seed too")) == "condition seed must be >= 0; seed too"
    assert page_message(UserError("--yawning is not a flag")) == "--yawning is not a flag"


def test_page_gives_the_reference_its_camera(files, tmp_path):
    """The page's reference camera field: auto (a 64-px head: taken as frontal, said under the reference), YAW,PITCH
    (said too), and a bad value as a message in the page's words; the page's settings carry it to the render."""
    pipe = load_model(BASE)
    web = WebRenderer(pipe, BASE, tmp_path)
    _, note = web.reference(str(files / "head.png"), "auto")
    assert note.startswith("the portrait: used as is (under 128 px") and note.endswith(
        "camera taken as frontal (reference camera YAW,PITCH gives it)"), note
    _, note = web.reference(str(files / "head.png"), "auto", "40,-5")
    assert note.endswith("; camera yaw +40°, pitch -5° (reference camera)"), note
    app = build_app(pipe, BASE, tmp_path)
    page = next(f for f in app.fns.values() if f.name == "page_render")
    *_, status = page.fn(str(files / "head.png"), "none", "left", "fast", "orbit", -30, 30, 0, 0, 2, 0, 1, 3.0, 0, False,
                         progress=lambda *a, **k: None)
    assert status == "**Error:** reference camera 'left': give auto or YAW,PITCH in degrees, e.g. 40,0 or -30,10", status
    show = next(f for f in app.fns.values() if f.name == "show_reference")
    assert show.fn(str(files / "head.png"), "auto", "1,2,3")[2].startswith("**Error:** reference camera '1,2,3'")
