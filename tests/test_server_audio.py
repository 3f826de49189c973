"""An audio model served with no server change: WAV out, the pipeline's own samples, options by
the generator's dataclass. Skips naming aigc-audio when that plugin is not installed."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest

from aigc_core import Pipeline, get_registry
from aigc_core.server import ServerSettings, create_app
from aigc_core.server.live import LiveServer

pytestmark = pytest.mark.skipif("mel-vae" not in get_registry().names("generator"),
                                reason="the aigc-audio plugin (generator mel-vae) is not installed")


@pytest.fixture(scope="module")
def audio_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("server-audio") / "notes"
    config = {
        "name": "notes",
        "seed": 1,
        "data": {"source": "synth-notes", "num_items": 40, "duration": 0.25, "sample_rate": 8000,
                 "timbres": ["sine", "square"], "batch_size": 16},
        "generator": {"name": "mel-vae", "size": "debug", "griffin_lim_iters": 4},
        "train": {"max_epochs": 1, "accelerator": "cpu", "progress_bar": False, "sample_every_n_epochs": 0},
        "metrics": [],
        "output": {"dir": str(out)},
    }
    return Pipeline.from_config(config).run()


def test_audio_model_serves_wavs_equal_to_the_pipeline(audio_run):
    import soundfile as sf

    app = create_app([audio_run], ServerSettings(batch_wait_ms=5))
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=60) as client:
        model = client.get("/v1/models").json()["models"][0]
        assert model["modality"] == "audio" and "temperature" in {o["name"] for o in model["options"]}
        body = client.post("/v1/models/notes/generate", json={"n": 2, "seed": 4}).json()
        again = client.post("/v1/models/notes/generate", json={"n": 2, "seed": 4}).json()
        bad = client.post("/v1/models/notes/generate", json={"n": 1, "options": {"temperature": "hot"}})
    assert [i["data_base64"] for i in body["items"]] == [i["data_base64"] for i in again["items"]]
    expected = Pipeline.from_run_dir(audio_run).postprocess(Pipeline.from_run_dir(audio_run).generate(2, seed=4))
    for item, ref in zip(body["items"], expected.items):
        assert item["media_type"] == "audio/wav"
        wave, rate = sf.read(io.BytesIO(base64.b64decode(item["data_base64"])), dtype="float32")
        assert rate == 8000 and wave.shape == ref.data.shape
        assert np.abs(wave - np.clip(ref.data, -1, 1)).max() < 1e-4  # 16-bit PCM rounding only
    assert bad.status_code == 422 and "temperature" in bad.text
