"""The application layer (app/render.py): the one flow behind render, demo, serve and batch rendering."""

import zipfile

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from diffportrait3d.app import RenderSettings, render
from diffportrait3d.app.render import make_conditions
from diffportrait3d.app.web import WEB_FILES
from diffportrait3d.errors import UserError
from diffportrait3d.faces.crop import centre_square

SETTINGS = RenderSettings(views=3, steps=2, guidance=2.0, eta=0.3, seed=5, group=2, condition_seed=3, yaw="-30:20")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("app") / "ref.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 40, 3), dtype=np.uint8)).save(path)
    return path


def test_render_is_the_pipeline_call_with_the_settings(tiny_pipe, reference):
    """Every sampler setting reaches the pipeline: the views equal a direct call with the same options."""
    result = render(SETTINGS, [reference], pipe=tiny_pipe)
    conds, labels = make_conditions(SETTINGS, tiny_pipe.image_size)
    # a 40x48 photo: the app centre-crops it to a square (too small to align), it is never stretched
    direct = tiny_pipe(centre_square(Image.open(reference)), conds, num_inference_steps=2, guidance_scale=2.0, eta=0.3, condition_labels=labels,
                       generator=torch.Generator().manual_seed(5), group_size=2).images
    assert len(result.views) == 3 and result.labels.shape == (3, 25)
    for a, b, c, d in zip(result.views, direct, result.conditions, conds):
        assert np.array_equal(np.asarray(a), np.asarray(b)) and np.array_equal(np.asarray(c), np.asarray(d))
    # and a changed setting changes the views (so the equality above is not vacuous)
    other = render(RenderSettings(**{**SETTINGS.__dict__, "seed": 6}), [reference], pipe=tiny_pipe)
    assert np.abs(np.asarray(other.views[0], float) - np.asarray(result.views[0], float)).mean() > 1


def test_folder_outputs_hold_the_views_and_keep_other_files(tiny_pipe, reference, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    steps = []
    result = render(SETTINGS, [reference], out, ("views",) + WEB_FILES, pipe=tiny_pipe,
                    progress=lambda done, total, what: steps.append((done, total, what)))
    assert [s for s in steps if s[2] == "denoising"] == [(1, 2, "denoising"), (2, 2, "denoising")]
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == sorted(["notes.txt", "view_000.png", "view_001.png", "view_002.png",
                                                            "dataset.json", *WEB_FILES])
    views = [np.asarray(v) for v in result.views]
    assert all(np.array_equal(np.asarray(Image.open(out / f"view_{i:03d}.png")), v) for i, v in enumerate(views))
    with zipfile.ZipFile(out / "views.zip") as z:
        assert z.namelist() == ["view_000.png", "view_001.png", "view_002.png"]
        assert all(np.array_equal(np.asarray(Image.open(z.open(n))), v) for n, v in zip(z.namelist(), views))
    frames = iio.imread(out / "turntable.mp4")
    assert frames.shape == (3, 64, 64, 3)
    # H.264 of the same views, in order: each frame is nearest to its own view
    dist = np.abs(frames[:, None].astype(float) - np.stack(views)[None]).mean(axis=(2, 3, 4))
    assert list(dist.argmin(1)) == [0, 1, 2]
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.size == (3 * 66 + 2, 3 * 66 + 2)  # reference | conditions | views, 3 columns of 64 px + 2 px padding


@pytest.mark.parametrize("change, words", [(dict(steps=0), "--steps 0"), (dict(views=2000), "--views 2000"),
                                            (dict(crop="sideways"), "--crop must be"), (dict(conditions="nowhere/"), "--conditions")])
def test_settings_are_checked_before_the_model_loads(reference, tmp_path, change, words):
    bad = RenderSettings(**{**SETTINGS.__dict__, "model": str(tmp_path / "no_model"), **change})
    with pytest.raises(UserError, match=words):
        render(bad, [reference], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bad_references_are_user_errors(tiny_pipe, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(UserError, match="not a readable image"):
        render(SETTINGS, [text], pipe=tiny_pipe)
    huge = tmp_path / "huge.png"
    Image.new("L", (12000, 8000)).save(huge)  # 96 MP, above PIL's decompression-bomb limit
    with pytest.raises(UserError, match="megapixels"):
        render(SETTINGS, [huge], pipe=tiny_pipe)
    blank = tmp_path / "blank.png"
    Image.new("RGB", (64, 64), (128, 128, 128)).save(blank)
    with pytest.raises(UserError, match="no face found"):
        render(RenderSettings(**{**SETTINGS.__dict__, "crop": "align"}), [blank], pipe=tiny_pipe)


def test_web_page_limits_name_the_field_and_old_results_are_pruned(tmp_path, monkeypatch):
    """The page's WebRenderer (no Gradio needed): over MAX_WEB_VIEWS / MAX_WEB_STEPS a one-line error that
    names the page's field (the limit itself passes); after more renders than KEEP_RESULTS, the newest
    KEEP_RESULTS result folders stay (also within one second) and the sample references are kept."""
    from types import SimpleNamespace

    import diffportrait3d.app.web as web
    from diffportrait3d.app.web import KEEP_RESULTS, MAX_WEB_STEPS, MAX_WEB_VIEWS, WebRenderer, page_message

    page = WebRenderer(None, RenderSettings(model="mini", steps=4, views=4), tmp_path)
    assert page.settings(views=MAX_WEB_VIEWS, steps=MAX_WEB_STEPS).views == MAX_WEB_VIEWS
    for change, field, other in ((dict(views=MAX_WEB_VIEWS + 1), "views", "steps"), (dict(steps=MAX_WEB_STEPS + 1), "steps", "views"),
                                 (dict(mode="exact", steps=None, views=MAX_WEB_VIEWS + 1), "views", "steps")):
        with pytest.raises(UserError) as e:
            page.settings(**change)
        text = page_message(e.value)
        assert len(text.splitlines()) == 1 and text.startswith(f"{field} ") and other not in text and "--" not in text.split("`")[0], text

    (tmp_path / "samples").mkdir()
    order = []

    def fake_render(s, refs, out, files, pipe=None, progress=None, lift=None):
        out.mkdir()
        order.append(out.name)
        return SimpleNamespace(files={})

    monkeypatch.setattr(web, "render", fake_render)
    monkeypatch.setattr(web.time, "strftime", lambda fmt, *a: "20270101-000000")  # every render in the same second
    for _ in range(KEEP_RESULTS + 5):
        page.render("ref.png", page.base)
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == sorted(order[-KEEP_RESULTS:] + ["samples"])
