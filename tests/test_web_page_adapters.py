"""The web page's adapter picker, in headless Chromium (as ``test_web_page.py``): a base served with
personalised runs on it offers their adapters, the chosen one is sent as the request's ``adapter``,
and the images shown are that adapter's (the bytes its run gives asked by its own name).
"""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from aigc_core.server import ServerSettings, create_app
from server_kit import LiveServer, personalised_gan_runs, tiny_gan_run
from test_web_page import chromium, open_page, press_generate, pytestmark  # noqa: F401 - the chromium skip

BASE = "digits-gan"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.getbasetemp()
    base = tiny_gan_run(root / "server-gan", name=BASE)
    adapters = personalised_gan_runs(base, root / "adapters", ["ink-a", "ink-b"])
    with LiveServer(create_app(adapters, ServerSettings())) as server:
        yield server


@pytest.fixture(scope="module")
def browser(live):
    with chromium() as browser:
        yield browser


def _shown(page) -> list[bytes]:
    sources = page.eval_on_selector_all("#gallery img.result", "is => is.map(i => i.src)")
    return [base64.b64decode(src.split(",", 1)[1]) for src in sources]


def _served(live, name: str, body: dict) -> list[bytes]:
    reply = httpx.post(f"{live.url}/v1/models/{name}/generate", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    return [base64.b64decode(i["data_base64"]) for i in reply.json()["items"]]


def test_the_picker_offers_the_bases_adapters_and_shows_the_chosen_ones_images(browser, live):
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
