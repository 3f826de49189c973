"""The web page end to end in headless Chromium (Debian's package, driven by Playwright):
open it, generate images and a streamed text, see them appear, with no network beyond loopback."""

from __future__ import annotations

import os
import shutil

import pytest

from aigc_core.server import ServerSettings, create_app
from server_kit import LiveServer, fake_text_run, tiny_gan_run, tiny_text_run

CHROMIUM = os.environ.get("AIGC_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(
    not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)),
    reason=f"chromium is not installed at {CHROMIUM} (apt-get install -y chromium; .ci/run does it)",
)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    gan = tiny_gan_run(base / "server-gan", name="digits-gan")
    text = fake_text_run(base / "server-fake-text", name="fake-text")
    runs = [gan, text] + [r for r in [tiny_text_run(base / "page-tiny-lm")] if r is not None]
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
