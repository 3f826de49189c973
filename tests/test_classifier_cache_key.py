"""The scoring classifier's cache is keyed on the data as read, not on how its path was spelled:
two configs that read one folder share one classifier."""

from __future__ import annotations


from aigc_core.contract.params import build_params


def folder_source(path: str, seed: int = 0):
    from aigc_core.builtin.image_sources import ImageFolder

    return ImageFolder(build_params(ImageFolder.Params, {"path": path, "image_size": 8}, "data"), seed=seed)


def test_two_spellings_of_one_folder_hit_one_cache_entry(tmp_path, monkeypatch):
    import numpy as np
    import torch
    from PIL import Image

    from aigc_core import cache_path, cached_model, data_identity

    images = tmp_path / "data" / "digits"
    for label in ("0", "1"):
        (images / label).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.full((8, 8), 20 * i + 100 * int(label), np.uint8)).save(images / label / f"{i}.png")
    (tmp_path / "link").symlink_to(images)
    monkeypatch.chdir(tmp_path)
    spellings = [str(images), "data/digits", "./data//digits/", "data/../data/digits", "link"]
    keys = {cache_path(tmp_path / "cache", "frechet", data_identity(folder_source(s))) for s in spellings}
    assert len(keys) == 1, keys
    trained = []

    def train():
        trained.append(1)
        return torch.nn.Linear(2, 2)

    for spelling in spellings:
        cached_model(cache_path(tmp_path / "cache", "frechet", data_identity(folder_source(spelling))),
                     lambda: torch.nn.Linear(2, 2), train)
    assert len(trained) == 1  # trained once, then loaded for every other spelling

    # other content is another data set: one image changed, or another seed's split
    before = data_identity(folder_source("data/digits"))
    assert data_identity(folder_source("data/digits", seed=1)) != before
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(images / "0" / "0.png")
    assert data_identity(folder_source("data/digits")) != before
