"""The web page end to end in headless Chromium (Debian's package, driven by Playwright), with no
network beyond loopback: every bundled model kind (GAN, VAE with a grid, DDPM, mel-VAE with and
without a trained vocoder, mel-diffusion, a real and a fake text model) generates with the form's
defaults at desktop (1280 px) and phone (375 px) widths, and what is shown is measured: nothing
wider than the screen, one column on the phone, images at a whole multiple of their own pixels,
spectrograms as wide as the results, audio players with room for their buttons, n results for n
samples with the grid apart, one box per streamed text, class names and the vocoder in captions.
Stop ends the server's work within a step and the next request runs at once. The adapter picker
offers a base's personalised runs and shows the chosen adapter's images.

Set ``AIGC_PAGE_SCREENSHOTS=DIR`` to keep a full-page screenshot of each model at each width.
"""

from __future__ import annotations

import base64
import contextlib
import json

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from aigc_core import Pipeline, get_registry
from aigc_core.server import ServerSettings, create_app
from server_kit import LiveServer, counters, fake_text_run, personalised_gan_runs, tiny_gan_run, tiny_text_run

CHROMIUM = os.environ.get("AIGC_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = os.environ.get("AIGC_PAGE_SCREENSHOTS")

pytestmark = pytest.mark.skipif(
    not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)),
    reason=f"chromium is not installed at {CHROMIUM} (apt-get install -y chromium; .ci/run does it)",
)


TRAIN = {"max_epochs": 1, "accelerator": "cpu", "progress_bar": False, "sample_every_n_epochs": 0}
NOTES = {"source": "synth-notes", "num_items": 24, "duration": 0.25, "sample_rate": 8000,
         "timbres": ["sine", "square"], "batch_size": 12}
#: One tiny run per bundled generator besides dcgan and causal-lm (served by the helpers above),
#: trained for one epoch at debug size; the generation settings are the run's, as a user's would be.
TINY_RUNS = {
    "vae": {"data": {"source": "sklearn-digits", "image_size": 8, "limit": 96, "batch_size": 32},
            "generator": {"name": "vae", "size": "debug"}, "postprocess": [{"name": "image-grid", "nrow": 2}]},
    "ddpm": {"data": {"source": "sklearn-digits", "image_size": 8, "limit": 96, "batch_size": 32},
             "generator": {"name": "ddpm", "size": "debug"}, "generate": {"num_inference_steps": 3, "batch_size": 4}},
    "stylegan": {"data": {"source": "sklearn-digits", "image_size": 8, "limit": 96, "batch_size": 32},
                 "generator": {"name": "stylegan", "size": "debug", "conditional": True}},
    "mel-vae": {"data": NOTES, "generator": {"name": "mel-vae", "size": "debug", "griffin_lim_iters": 4}},
    "mel-diffusion": {"data": NOTES, "generator": {"name": "mel-diffusion", "size": "debug", "griffin_lim_iters": 4},
                      "generate": {"num_inference_steps": 3, "batch_size": 4}},
    "mel-vocoder": {"data": NOTES, "generator": {"name": "mel-vocoder", "size": "debug", "segment_frames": 8},
                    "train": {**TRAIN, "limit_val_batches": 0}},
}


def tiny_runs(base: Path) -> list[Path]:
    installed = get_registry().names("generator")
    runs = []

    def train(name: str, config: dict) -> Path:
        out = base / f"page-{name}"
        if not (out / "manifest.json").is_file():
            Pipeline.from_config({"name": f"tiny-{name}", "seed": 0, "train": TRAIN, "metrics": [],
                                  "output": {"dir": str(out)}, **config}).fit()
        return out

    for generator, config in TINY_RUNS.items():
        if generator in installed:
            runs.append(train(generator, config))
    if {"mel-vae", "mel-vocoder"} <= set(installed):  # a clip vocoded by a trained vocoder, not Griffin-Lim
        voiced = dict(TINY_RUNS["mel-vae"], generator={**TINY_RUNS["mel-vae"]["generator"],
                                                       "vocoder": str(base / "page-mel-vocoder")})
        runs.append(train("mel-vae-vocoded", voiced))
    return runs


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    gan = tiny_gan_run(base / "server-gan", name="digits-gan")
    text = fake_text_run(base / "server-fake-text", name="fake-text")
    runs = [gan, text] + [r for r in [tiny_text_run(base / "page-tiny-lm")] if r is not None] + tiny_runs(base)
    with LiveServer(create_app(runs, ServerSettings())) as server:
        yield server


@contextlib.contextmanager
def chromium():
    """Headless Chromium for a module's page tests (skips, naming what is missing, without chromium
    or playwright)."""
    if not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip(f"chromium is not installed at {CHROMIUM} (apt-get install -y chromium; .ci/run does it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def browser(live):
    with chromium() as browser:
        yield browser


def open_page(browser, url: str, width: int):
    """The served page at ``url``, ready, in a fresh context that refuses any request elsewhere."""
    context = browser.new_context(viewport={"width": width, "height": 800})
    outside = []

    def guard(route):  # the page must need nothing but this server
        if route.request.url.startswith(url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.outside = outside
    page.set_default_timeout(20_000)
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready=true]")
    return page


@pytest.fixture(scope="module")
def page(browser, live):
    page = open_page(browser, live.url, 1280)
    yield page
    page.context.close()


def press_generate(page) -> str:
    page.click("#generate")
    page.wait_for_function("['done', 'failed', 'stopped'].includes(document.getElementById('results').dataset.state)")
    return page.get_attribute("#results", "data-state")


def box(page, selector: str) -> list[dict]:
    return page.eval_on_selector_all(selector, "els => els.map(e => { const r = e.getBoundingClientRect(); "
                                               "return {x: r.x, y: r.y, w: r.width, h: r.height}; })")


def test_page_generates_images_into_the_gallery(page):
    page.select_option("#model", "digits-gan")
    assert page.locator('[data-option="use_ema"]').is_checked()  # form built from the option schema
    page.fill("#n", "3")
    page.fill("#seed", "4")
    assert press_generate(page) == "done"
    widths = page.eval_on_selector_all("#gallery img.result", "imgs => imgs.map(i => i.naturalWidth)")
    assert widths == [8, 8, 8]  # decoded PNGs, not broken images
    links = page.eval_on_selector_all("#gallery a.download", "as => as.map(a => a.download)")
    assert links == ["sample_00000.png", "sample_00001.png", "sample_00002.png"]
    assert "seed 4" in page.text_content("#status")
    assert page.outside == []


def test_page_streams_text_and_shows_errors(page):
    page.select_option("#model", "fake-text")
    assert page.is_visible("#stream") and page.is_checked("#stream")
    page.fill('[data-option="prompt"]', "hello")
    page.fill('[data-option="max_new_tokens"]', "4")
    page.fill("#n", "1")
    page.fill("#seed", "3")
    assert press_generate(page) == "done"
    texts = page.eval_on_selector_all("#gallery figure.text pre", "ps => ps.map(p => p.textContent)")
    assert len(texts) == 1 and texts[0].startswith("hello") and len(texts[0].split()) == 5
    page.fill('[data-option="max_new_tokens"]', "0")  # out of range: the server's message shows
    assert press_generate(page) == "failed"
    assert "options.max_new_tokens" in page.text_content("#error")
    assert page.outside == []


def test_streaming_n_texts_gives_n_boxes_each_with_its_download(page):
    page.select_option("#model", "fake-text")
    page.fill('[data-option="max_new_tokens"]', "3")
    page.fill("#n", "3")
    page.fill("#seed", "11")
    assert page.is_checked("#stream") and press_generate(page) == "done"
    texts = page.eval_on_selector_all("#gallery figure.text pre", "ps => ps.map(p => p.textContent)")
    assert len(texts) == 3 and len(set(texts)) == 3 and all(len(t.split()) == 3 for t in texts), texts
    captions = page.eval_on_selector_all("#gallery figure.text figcaption", "cs => cs.map(c => c.textContent)")
    assert [("seed 11" in captions[0]), ("seed 12" in captions[1]), ("seed 13" in captions[2])] == [True] * 3
    downloads = page.eval_on_selector_all("#gallery figure.text a.download",
                                          "as => as.map(a => [a.download, a.href.startsWith('blob:')])")
    assert downloads == [[f"sample_{i:05d}.txt", True] for i in range(3)]
    saved = page.evaluate("fetch(document.querySelector('#gallery a.download').href).then(r => r.text())")
    assert saved == texts[0]  # the download is the box's text


def test_page_streams_from_the_real_text_plugin(page):
    """The same page over a real aigc-text model: its list option (prompts) and its stream."""
    if not page.locator('#model option[value="tiny-lm"]').count():
        pytest.skip("the aigc-text plugin (generator causal-lm) is not installed")
    page.select_option("#model", "tiny-lm")
    assert page.is_checked("#stream")
    page.fill('[data-option="prompts"]', "Keyword ")
    page.fill('[data-option="max_new_tokens"]', "5")
    page.fill("#n", "1")
    page.fill("#seed", "3")
    assert press_generate(page) == "done"
    text = page.text_content("#gallery figure.text pre")
    assert text.startswith("Keyword") and len(text) > len("Keyword "), repr(text)  # untrained: any bytes after
    assert page.outside == []


def expected_models() -> set[str]:
    installed = get_registry().names("generator")
    names = {"digits-gan", "fake-text"} | {f"tiny-{g}" for g in TINY_RUNS if g in installed}
    if {"mel-vae", "mel-vocoder"} <= set(installed):
        names.add("tiny-mel-vae-vocoded")
    return names


def check_shown(page, model: dict, width: int) -> None:
    """What one model's results look like, measured: each assertion names the model and width."""
    where = f"{model['name']} at {width} px"
    assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{where}: wider than the screen"
    results = box(page, "#results")[0]
    form = box(page, "#form")[0]
    if width < 700:
        assert results["y"] >= form["y"] + form["h"], f"{where}: not one column"
    else:
        assert results["x"] >= form["x"] + form["w"], f"{where}: not two columns"
    # the stream option only where the model streams
    assert page.is_visible("#stream") == model["stream"], where
    samples = page.locator("#gallery figure.sample")
    n = int(page.input_value("#n"))
    if model["modality"] == "image":
        assert samples.count() == n, f"{where}: {samples.count()} results for {n} samples"
        for img in page.eval_on_selector_all("#results img.result", "is => is.map(i => ({w: i.getBoundingClientRect()"
                                             ".width, nw: i.naturalWidth, zoom: Number(i.dataset.zoom), "
                                             "grid: !!i.closest('figure.derived')}))"):
            assert img["w"] == img["nw"] * img["zoom"], f"{where}: an image not at a whole multiple of its pixels"
            assert img["w"] >= (200 if img["grid"] else 96), f"{where}: image {img['w']} px wide"
            assert img["w"] <= results["w"], f"{where}: an image wider than the results"
    elif model["modality"] == "audio":
        assert samples.count() == n, f"{where}: {samples.count()} results for {n} samples"
        for player in box(page, "#gallery audio"):
            assert player["w"] >= min(300, 0.9 * results["w"]) and player["h"] >= 30, f"{where}: player {player}"
        page.wait_for_function("[...document.querySelectorAll('#gallery audio')].every(a => a.readyState >= 1)")
        durations = page.eval_on_selector_all("#gallery audio", "as => as.map(a => a.duration)")
        assert all(d == pytest.approx(0.25, abs=0.01) for d in durations), f"{where}: the players hold {durations}"
        for canvas in box(page, "#gallery canvas.spectrogram"):
            assert canvas["w"] >= 0.9 * results["w"] - 20 and canvas["h"] >= 150, f"{where}: spectrogram {canvas}"
        captions = page.eval_on_selector_all("#gallery figcaption", "cs => cs.map(c => c.textContent)")
        assert all(("sine" in c or "square" in c) and "label" not in c for c in captions), captions  # names
        vocoded = "trained mel-vocoder" if model["name"] in ("tiny-mel-vae-vocoded", "tiny-mel-vocoder") else "Griffin-Lim"
        assert all(f"vocoder: {vocoded}" in c for c in captions), (where, captions)
    else:
        texts = page.locator("#gallery figure.text pre")
        assert texts.count() == n, f"{where}: {texts.count()} text boxes for {n} samples"
        assert page.locator("#gallery figure.text a.download[href]").count() == n, where
        for text in box(page, "#gallery figure.text"):
            assert text["w"] >= 0.9 * results["w"] - 20, f"{where}: text box {text}"


@pytest.mark.parametrize("width", [1280, 375])
def test_every_model_kind_with_the_form_defaults_at_desktop_and_phone_width(browser, live, width):
    """Generate pressed with the form untouched on every served model (the defaults must be a valid
    request), then what is shown is measured (see ``check_shown``)."""
    page = open_page(browser, live.url, width)
    models = {m["name"]: m for m in page.evaluate("fetch('v1/models').then(r => r.json())")["models"]}
    assert expected_models() <= set(models), sorted(models)
    for name, model in models.items():
        page.select_option("#model", name)
        state = press_generate(page)
        error = page.text_content("#error") if page.is_visible("#error") else ""
        assert state == "done" and not error, f"{name}: {state} {error}"
        if name == "tiny-vae":  # its run has an image-grid post-processor: the grid apart, not a sample
            assert page.locator("#derived-items figure.derived img.result").count() == 1
            assert page.is_visible("#derived")
        else:
            assert page.is_hidden("#derived")
        check_shown(page, model, width)
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(SHOTS) / f"{name}-{width}.png"), full_page=True)
    assert page.outside == []
    page.context.close()


def test_every_control_is_labelled_and_focus_is_visible(browser, live):
    page = open_page(browser, live.url, 375)
    for name in ("tiny-lm" if page.locator('#model option[value="tiny-lm"]').count() else "fake-text", "digits-gan"):
        page.select_option("#model", name)
        unnamed = page.eval_on_selector_all(
            "input, select, textarea, button",
            "els => els.filter(e => !e.closest('[hidden]')).filter(e => !((e.labels && e.labels.length && "
            "e.labels[0].textContent.trim()) || e.getAttribute('aria-label') || "
            "(e.tagName === 'BUTTON' && e.textContent.trim()))).map(e => e.outerHTML)")
        assert unnamed == [], f"{name}: controls without a label: {unnamed}"
    page.click("#seed")
    page.keyboard.press("Tab")  # keyboard focus: the next control shows where it is
    outline = page.evaluate("(() => { const s = getComputedStyle(document.activeElement); "
                            "return [document.activeElement.id, s.outlineStyle, parseFloat(s.outlineWidth)]; })()")
    assert outline[1] != "none" and outline[2] >= 2, outline
    page.context.close()


def test_stop_ends_the_generation_within_a_step_and_the_next_request_starts_at_once(page):
    """The fake model works in 0.25 s steps; Stop aborts the page's fetch, the server sees the
    connection close and the generator stops at its next check, so the next request does not wait
    behind the rest of the stopped one."""
    asked, step_s = 40, 0.25
    page.select_option("#model", "fake-text")
    page.uncheck("#stream")
    page.fill("#n", "1")
    page.fill('[data-option="steps"]', str(asked))
    page.fill('[data-option="step_s"]', str(step_s))
    calls = len(counters.steps)
    page.click("#generate")
    page.wait_for_selector("#progress:not([hidden])")
    page.wait_for_function("Number(document.querySelector('#progress').dataset.done) >= 2")
    stopped = counters.steps[calls]
    at_stop = stopped[1]
    page.click("#stop")
    page.wait_for_selector("#results[data-state=stopped]", state="attached")
    assert page.text_content("#status") == "stopped"
    page.fill('[data-option="steps"]', "1")
    started = time.perf_counter()
    assert press_generate(page) == "done"
    latency = time.perf_counter() - started
    remaining = (asked - at_stop) * step_s
    assert latency < 0.2 * remaining, (latency, remaining)
    assert stopped[1] <= at_stop + 2 and stopped[1] < asked, stopped  # within a step of the click
    assert page.locator("#gallery figure.text").count() == 1
    page.fill('[data-option="steps"]', "0")
    page.check("#stream")


def test_changing_the_model_clears_the_previous_results(page):
    page.select_option("#model", "digits-gan")
    page.fill("#n", "2")
    assert press_generate(page) == "done"
    assert page.locator("#gallery img.result").count() == 2
    page.select_option("#model", "fake-text")
    assert page.locator("#gallery figure").count() == 0
    page.fill('[data-option="max_new_tokens"]', "0")  # an error, then a model change clears it too
    assert press_generate(page) == "failed"
    page.select_option("#model", "digits-gan")
    assert page.is_hidden("#error") and page.locator("#gallery figure").count() == 0


def test_page_shows_the_progress_the_generator_reports(page):
    """A slow generation (six steps of 0.25 s, each reported): the page shows a progress bar that
    advances while the request runs, and hides it when the items arrive."""
    page.select_option("#model", "fake-text")
    page.uncheck("#stream")
    page.fill('[data-option="steps"]', "6")
    page.fill('[data-option="step_s"]', "0.25")
    page.fill("#n", "1")
    page.click("#generate")
    page.wait_for_selector("#progress:not([hidden])")
    first = int(page.get_attribute("#progress", "data-done"))
    page.wait_for_function(f"Number(document.querySelector('#progress').dataset.done) > {first}")
    assert "steps" in page.text_content("#status") and page.get_attribute("#progress", "max") == "6"
    page.wait_for_selector("#results[data-state=done]", state="attached")
    assert page.is_hidden("#progress") and "seed" in page.text_content("#status")
    assert page.outside == []


def test_a_progress_answer_arriving_after_the_results_does_not_show_the_bar_again(page):
    """Each progress answer (made by the server at once) reaches the page 0.4 s late, longer than
    its 0.25 s poll, so answers saying "busy" are still in flight when the items arrive: they
    belong to a finished request and are ignored."""

    def late(route):
        answer = route.fetch()
        time.sleep(0.4)
        route.fulfill(response=answer)

    page.select_option("#model", "fake-text")
    page.uncheck("#stream")
    page.fill('[data-option="steps"]', "4")
    page.fill('[data-option="step_s"]', "0.25")
    page.fill("#n", "1")
    page.route("**/progress", late)
    try:
        assert press_generate(page) == "done"
        page.wait_for_timeout(1000)  # the answers in flight arrive
        assert page.is_hidden("#progress") and "seed" in page.text_content("#status")
    finally:
        page.unroute("**/progress")
    page.fill('[data-option="steps"]', "0")
    page.check("#stream")


def test_a_file_option_sends_the_chosen_file_not_a_path(page, tmp_path):
    """The VAE's interpolation ends are file pickers; the page sends their bytes (issue 29)."""
    if not page.locator('#model option[value="tiny-vae"]').count():
        pytest.skip("the aigc-vae plugin (generator vae) is not installed")
    import numpy as np

    from aigc_core import png_bytes

    ends = []
    for name, value in (("black.png", 0.0), ("white.png", 1.0)):
        ends.append(tmp_path / name)
        ends[-1].write_bytes(png_bytes(np.full((1, 8, 8), value, np.float32)))
    page.select_option("#model", "tiny-vae")
    assert page.get_attribute('[data-option="a"]', "type") == "file"
    page.select_option('[data-option="mode"]', '"interpolation"')
    page.fill('[data-option="steps"]', "3")
    page.set_input_files('[data-option="a"]', str(ends[0]))
    page.set_input_files('[data-option="b"]', str(ends[1]))
    page.fill("#n", "1")
    page.click("#generate")
    page.wait_for_function("!document.getElementById('generate').disabled")
    assert not page.is_visible("#error"), page.text_content("#error")
    assert page.locator("#gallery img.result").count() == 3  # a row of three
    assert page.locator("#derived-items img.result").count() == 1  # and its grid, apart
    page.set_input_files('[data-option="a"]', [])
    page.set_input_files('[data-option="b"]', [])
    page.select_option('[data-option="mode"]', '"samples"')
    assert page.outside == []


def test_style_mixing_and_a_walk_in_w_show_on_the_page(page):
    """A style mix's grid says which seed gave which layers; a walk's frames also play in place."""
    if not page.locator('#model option[value="tiny-stylegan"]').count():
        pytest.skip("the aigc-gan plugin (generator stylegan) is not installed")
    page.select_option("#model", "tiny-stylegan")
    page.fill("#n", "3")
    page.fill("#seed", "1")
    page.fill('[data-option="mix"]', "7")
    assert press_generate(page) == "done", page.text_content("#error")
    assert page.locator("#gallery img.result").count() == 3
    grid_caption = page.text_content("#derived-items figure.derived figcaption")
    assert "top: seed 1 (coarse, layers 0-1); middle: seed 7 (fine, 2-3); bottom: mixed" in grid_caption
    assert "layers 0-1 from seed 1, 2-3 from seed 7" in page.text_content("#gallery figure figcaption")
    page.fill('[data-option="mix"]', "")
    page.fill('[data-option="interpolate"]', "7")
    page.fill('[data-option="frames"]', "4")
    page.fill("#n", "1")
    assert press_generate(page) == "done", page.text_content("#error")
    assert page.locator("#gallery img.result").count() == 4  # the frames
    animation = page.locator("#derived-items figure.animation img")
    assert animation.count() == 1 and "walk_000: 4 frames" in page.text_content("#derived-items figure.animation")
    seen = set()
    for _ in range(12):  # it plays: the picture changes (100 ms a frame)
        seen.add(animation.get_attribute("src"))
        time.sleep(0.05)
    assert len(seen) >= 2
    page.fill('[data-option="interpolate"]', "")
    page.fill('[data-option="frames"]', "16")
    page.fill("#seed", "")
    assert page.outside == []


# -- the adapter picker --------------------------------------------------------------------------

BASE = "digits-gan"


@pytest.fixture(scope="module")
def adapter_live(tmp_path_factory):
    """A base served with two personalised runs on it (their own server: the picker lists only these)."""
    root = tmp_path_factory.getbasetemp()
    base = tiny_gan_run(root / "server-gan", name=BASE)
    adapters = personalised_gan_runs(base, root / "adapters", ["ink-a", "ink-b"])
    with LiveServer(create_app(adapters, ServerSettings())) as server:
        yield server


def _shown(page) -> list[bytes]:
    sources = page.eval_on_selector_all("#gallery img.result", "is => is.map(i => i.src)")
    return [base64.b64decode(src.split(",", 1)[1]) for src in sources]


def _served(live, name: str, body: dict) -> list[bytes]:
    reply = httpx.post(f"{live.url}/v1/models/{name}/generate", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    return [base64.b64decode(i["data_base64"]) for i in reply.json()["items"]]


def test_the_picker_offers_the_bases_adapters_and_shows_the_chosen_ones_images(browser, adapter_live):
    """A base served with personalised runs on it offers their adapters, the chosen one is sent as the
    request's ``adapter``, and the images shown are that adapter's (the bytes its run gives asked by
    its own name)."""
    live = adapter_live
    page = open_page(browser, live.url, 1280)
    sent = []
    page.on("request", lambda r: sent.append(json.loads(r.post_data)) if r.url.endswith("/generate") else None)
    try:
        page.select_option("#model", BASE)
        assert page.is_visible("#adapter")
        assert page.eval_on_selector_all("#adapter option", "os => os.map(o => o.value)") == ["", "ink-a", "ink-b"]
        assert page.inner_text("label[for=adapter]") == "Adapter"
        page.fill("#n", "2")
        page.fill("#seed", "5")

        page.select_option("#adapter", "ink-b")
        assert press_generate(page) == "done"
        assert sent[-1]["adapter"] == "ink-b"
        ink_b = _shown(page)
        assert ink_b == _served(live, "ink-b", {"n": 2, "seed": 5})  # the adapter's own bytes

        page.select_option("#adapter", "")  # none: the base alone, no adapter field sent
        assert press_generate(page) == "done"
        assert "adapter" not in sent[-1]
        base = _shown(page)
        assert base == _served(live, BASE, {"n": 2, "seed": 5}) and base != ink_b

        page.select_option("#model", "ink-a")  # a personalised run is a model of its own: no picker
        assert page.is_hidden("#adapter-field")
        assert "adapter on digits-gan" in page.inner_text("#model-info")
    finally:
        page.context.close()
