"""Classifiers trained on a data set once and cached, for metrics scored in their feature space.

Fréchet distances, precision/recall and memorisation checks need a feature space; a classifier
trained on the data set's own clips or images is offline and fits any size, and training it
once per data set (cached under ``MetricContext.cache_dir``) keeps later runs fast. This module
is that cache, written once for every such metric (the image metrics here, the audio plugin's):
a key from the data set's identity and the classifier's settings, a load that falls back to
training when the entry is stale or damaged, and an atomic save.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Mapping

from ..contract.atomic import atomic_path


#: Data parameters that change how items are batched, not which items there are.
LOADING_ONLY = ("batch_size", "num_workers")


def data_identity(source: Any) -> dict:
    """What makes one data set differ from another for a cached classifier: its content as read
    (``DataSource.fingerprint``: every split's items) and the seed the classifier trains with.

    Not how the data was named: two configs reading the same files through differently spelled
    paths (``data/mnist``, ``./data//mnist``, an absolute path, ``$AIGC_DATA_DIR``) share one
    classifier, and a changed file never meets a stale one. How it is batched does not count
    either. A source without ``fingerprint`` (not a ``DataSource``) falls back to its component
    name and parameters, less the loading-only ones.
    """
    fingerprint = getattr(source, "fingerprint", None)
    if callable(fingerprint):
        return {"content": fingerprint(), "seed": source.seed}
    params = source.params.model_dump()
    data = {k: v for k, v in params.items() if k not in LOADING_ONLY}
    return {"source": type(source).component_name, "data": data, "seed": source.seed}


def cache_path(cache_dir: str | Path, folder: str, key: Mapping[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(dict(key), sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(cache_dir) / folder / f"{digest}.safetensors"


def cached_model(path: Path, build: Callable[[], Any], train: Callable[[], Any],
                 what: str = "training the scoring classifier") -> Any:
    """The module cached at ``path`` (``build()`` given its saved weights), or ``train()``'s, saved there.

    A stale or damaged entry (another architecture, a torn file) is removed and trained again.
    Training is shown as the phase ``what``; ``train`` moves it with ``aigc_core.report_progress``
    (minutes on a CPU: the person waiting should see them pass).
    """
    from ..contract.progress import phase

    from safetensors.torch import load_file, save_file

    path = Path(path)
    if path.is_file():
        net = build()
        try:
            net.load_state_dict(load_file(str(path)))
            return net
        except Exception:  # noqa: BLE001 - any unreadable entry is retrained, never trusted
            path.unlink(missing_ok=True)
    with phase(what):
        net = train()
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
    return net
