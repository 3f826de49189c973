"""The web page end to end in headless Chromium (Debian's package, driven by Playwright):
open it, generate images and a streamed text, see them appear, with no network beyond loopback;
every bundled model generates with the form's defaults, and a model change clears old results."""

from __future__ import annotations

import os
import shutil

import pytest

from aigc_core import Pipeline, get_registry
from aigc_core.server import ServerSettings, create_app
from server_kit import LiveServer, fake_text_run, tiny_gan_run, tiny_text_run

CHROMIUM = os.environ.get("AIGC_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(
    not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)),
    reason=f"chromium is not installed at {CHROMIUM} (apt-get install -y chromium; .ci/run does it)",
)


TRAIN = {"max_epochs": 1, "accelerator": "cpu", "progress_bar": False, "sample_every_n_epochs": 0}
#: One tiny run per bundled generator besides dcgan and causal-lm (served by the helpers above),
#: trained for one epoch at debug size; the generation settings are the run's, as a user's would be.
TINY_RUNS = {
    "vae": {"data": {"source": "sklearn-digits", "image_size": 8, "limit": 96, "batch_size": 32},
            "generator": {"name": "vae", "size": "debug"}},
    "ddpm": {"data": {"source": "sklearn-digits", "image_size": 8, "limit": 96, "batch_size": 32},
             "generator": {"name": "ddpm", "size": "debug"}, "generate": {"num_inference_steps": 3, "batch_size": 4}},
    "mel-vae": {"data": {"source": "synth-notes", "num_items": 24, "duration": 0.25, "sample_rate": 8000,
                         "timbres": ["sine", "square"], "batch_size": 12},
                "generator": {"name": "mel-vae", "size": "debug", "griffin_lim_iters": 4}},
}


def tiny_runs(base) -> list:
    installed = get_registry().names("generator")
    runs = []
    for generator, config in TINY_RUNS.items():
        if generator not in installed:
            continue
        out = base / f"page-{generator}"
        if not (out / "manifest.json").is_file():
            Pipeline.from_config({"name": f"tiny-{generator}", "seed": 0, "train": TRAIN, "metrics": [],
                                  "output": {"dir": str(out)}, **config}).fit()
        runs.append(out)
    return runs


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    gan = tiny_gan_run(base / "server-gan", name="digits-gan")
    text = fake_text_run(base / "server-fake-text", name="fake-text")
    runs = [gan, text] + [r for r in [tiny_text_run(base / "page-tiny-lm")] if r is not None] + tiny_runs(base)
    with LiveServer(create_app(runs, ServerSettings())) as server:
        yield server


@pytest.fixture(scope="module")
def page(live):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        context = browser.new_context()
        outside = []

        def guard(route):  # the page must need nothing but this server
            if route.request.url.startswith(live.url):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        context.route("**/*", guard)
        page = context.new_page()
        page.outside = outside
        page.set_default_timeout(20_000)
        page.goto(live.url + "/")
        page.wait_for_selector("body[data-ready=true]")
        yield page
        browser.close()


def test_page_generates_images_into_the_gallery(page):
    page.select_option("#model", "digits-gan")
    assert page.locator('[data-option="use_ema"]').is_checked()  # form built from the option schema
    page.fill("#n", "3")
    page.fill("#seed", "4")
    page.click("#generate")
    page.wait_for_function("document.querySelectorAll('#gallery img.sample').length === 3")
    widths = page.eval_on_selector_all("#gallery img.sample", "imgs => imgs.map(i => i.naturalWidth)")
    assert widths == [8, 8, 8]  # decoded PNGs, not broken images
    links = page.eval_on_selector_all("#gallery a.download", "as => as.map(a => a.download)")
    assert links == ["sample_00000.png", "sample_00001.png", "sample_00002.png"]
    assert "seed 4" in page.text_content("#status")
    assert page.outside == []


def test_page_streams_text_and_shows_errors(page):
    page.select_option("#model", "fake-text")
    assert page.is_visible("#stream-label") and page.is_checked("#stream")
    page.fill('[data-option="prompt"]', "hello")
    page.fill('[data-option="max_new_tokens"]', "4")
    page.fill("#seed", "3")
    page.click("#generate")
    page.wait_for_selector("#stream-output[data-done=true]")
    text = page.text_content("#stream-output")
    assert text.startswith("hello") and len(text.split()) == 5
    page.fill('[data-option="max_new_tokens"]', "0")  # out of range: the server's message shows
    page.click("#generate")
    page.wait_for_selector("#error:not([hidden])")
    assert "options.max_new_tokens" in page.text_content("#error")
    assert page.outside == []


def test_page_streams_from_the_real_text_plugin(page):
    """The same page over a real aigc-text model: its list option (prompts) and its stream."""
    if not page.locator('#model option[value="tiny-lm"]').count():
        pytest.skip("the aigc-text plugin (generator causal-lm) is not installed")
    page.select_option("#model", "tiny-lm")
    assert page.is_checked("#stream")
    page.fill('[data-option="prompts"]', "Keyword ")
    page.fill('[data-option="max_new_tokens"]', "5")
    page.fill("#seed", "3")
    page.click("#generate")
    page.wait_for_selector("#stream-output[data-done=true]")
    text = page.text_content("#stream-output")
    assert text.startswith("Keyword") and len(text) > len("Keyword "), repr(text)  # untrained: any bytes after
    assert page.outside == []


def _generate_with_defaults(page) -> None:
    page.fill("#n", "2")
    page.fill("#seed", "5")
    page.click("#generate")
    page.wait_for_function("!document.getElementById('generate').disabled")


def test_every_served_model_generates_with_the_form_defaults(page):
    """No field touched but the sample count and seed: whatever the form shows by default must be
    a valid request (an empty optional text field once sent '' for the audio model's label)."""
    names = page.eval_on_selector_all("#model option", "os => os.map(o => o.value)")
    expected = {"digits-gan", "fake-text"} | {f"tiny-{g}" for g in TINY_RUNS if g in get_registry().names("generator")}
    assert expected <= set(names), names
    for name in names:
        page.select_option("#model", name)
        _generate_with_defaults(page)
        error = page.text_content("#error") if page.is_visible("#error") else ""
        assert not error, f"{name}: {error}"
        produced = page.locator("#gallery figure").count() or len(page.text_content("#stream-output") or "")
        assert produced, f"{name}: nothing shown (status: {page.text_content('#status')})"
    assert page.outside == []


def test_changing_the_model_clears_the_previous_results(page):
    page.select_option("#model", "digits-gan")
    _generate_with_defaults(page)
    assert page.locator("#gallery img.sample").count() == 2
    page.select_option("#model", "fake-text")
    assert page.locator("#gallery figure").count() == 0
    page.fill('[data-option="max_new_tokens"]', "0")  # an error, then a model change clears it too
    page.click("#generate")
    page.wait_for_selector("#error:not([hidden])")
    page.select_option("#model", "digits-gan")
    assert page.is_hidden("#error") and page.is_hidden("#stream-output")


def test_page_shows_the_progress_the_generator_reports(page):
    """A slow generation (the fake waits 1.5 s, reporting the milliseconds waited): the page shows a
    progress bar that advances while the request runs, and hides it when the items arrive."""
    page.select_option("#model", "fake-text")
    page.uncheck("#stream")
    page.fill('[data-option="max_new_tokens"]', "3")
    page.fill('[data-option="delay_s"]', "1.5")
    page.fill("#n", "1")
    page.click("#generate")
    page.wait_for_selector("#progress:not([hidden])")
    first = int(page.get_attribute("#progress", "data-done"))
    page.wait_for_function(f"Number(document.querySelector('#progress').dataset.done) > {first}")
    assert "steps" in page.text_content("#status") and page.get_attribute("#progress", "max") == "1500"
    page.wait_for_selector("#gallery .item, #gallery pre, #gallery *")
    page.wait_for_selector("#progress[hidden]", state="attached")
    assert "seed" in page.text_content("#status")
    page.fill('[data-option="delay_s"]', "0")
    page.check("#stream")
    assert page.outside == []


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
    assert page.locator("#gallery img.sample").count() == 3 + 1  # a row of three and its grid
    page.set_input_files('[data-option="a"]', [])
    page.set_input_files('[data-option="b"]', [])
    page.select_option('[data-option="mode"]', '"samples"')
    assert page.outside == []
