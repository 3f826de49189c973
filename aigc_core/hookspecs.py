"""The whole contract between aigc and its plugins.

A plugin is a module (named by an entry point in the group ``aigc``) that implements any of
the hooks below with ``@aigc_core.hookimpl``. Each hook receives a ``register`` callable; the
plugin calls it once per component it provides::

    register(name, target, modality=..., description="")

* ``name`` -- the name configs use (``generator: {name: dcgan}``); lowercase, dashes allowed.
* ``target`` -- the component class, or better a ``"package.module:ClassName"`` string, so that
  discovery imports nothing heavy: the module is imported only when a pipeline uses it.
* ``modality`` -- ``"image"``, ``"text"``, ``"audio"`` or one a plugin registered
  (``aigc_register_modalities``); for post-processors, metrics and
  exporters a sequence of the modalities accepted is allowed too.
* ``description`` -- one line shown by ``aigc plugins list`` and ``aigc plugins info``.

The component hooks' examples below are each the body of an implementation (its ``@hookimpl``
and ``def`` lines are the hook's own).

Implementations must not import torch, Lightning or transformers at module level: ``aigc --help``
and ``aigc plugins list`` load every plugin and must stay fast.
"""

import pluggy

hookspec = pluggy.HookspecMarker("aigc")
#: What a plugin marks its hook implementations with (also ``aigc_core.hookimpl``).
hookimpl = pluggy.HookimplMarker("aigc")


@hookspec
def aigc_register_modalities(register):
    """Register modalities: kinds of content, each with the object that says how to handle it.

    ``register(name, target=None, description="")``: ``name`` is lowercase letters, digits and
    dashes (``"midi"``); ``target`` is a subclass of ``aigc_core.Modality`` (better a
    ``"package.module:Class"`` string, imported on first use); ``description`` says what
    ``Item.data`` holds. The core's ``image``, ``text`` and ``audio`` are registered this way by
    the built-in plugin. Called before the component hooks of every plugin, so components of any
    plugin may then use the modality.

    The ``Modality`` is everything aigc needs to handle such content without knowing it:
    ``encode(item, meta) -> bytes`` (one file, used by the server and ``aigc_core.FileExporter``),
    ``suffix`` and ``media_type``, ``display`` (how the web page shows an item: ``{"render":
    "image" | "audio" | "text" | "download", "note": ...}``), ``preview_count`` and
    ``write_preview`` (training previews), ``check_item``/``check_raw``/``check_info`` (the
    contract test kit's checks, raising ``aigc_core.InvalidItem``) and ``sample_content``/
    ``tiny_items`` (the kit's sample data). Without a target the base class's defaults apply
    (files to download, no checks, no encoder). For ``aigc run`` to write such content, register
    an exporter under the modality's name (the default exporter of a modality is the one named
    like it); ``aigc_core.FileExporter`` writes one file per item with the modality's encoder.

    Example::

        @hookimpl
        def aigc_register_modalities(register):
            register("midi", "my_plugin.midi:Midi", description="list of (pitch, start_s, duration_s) tuples")

        @hookimpl
        def aigc_register_exporters(register):
            register("midi", "aigc_core:FileExporter", modality="midi", description="One .mid per item")
    """


@hookspec
def aigc_register_data_sources(register):
    """Register data sources: where raw content of one modality comes from.

    A data source is a subclass of ``aigc_core.DataSource`` (it has a ``LightningDataModule``'s
    loaders; training wraps it, so generation never imports Lightning) with a
    ``Params`` model (a subclass of ``aigc_core.Params``). It yields raw content and knows nothing of models: images as float CHW
    in [0, 1], text as ``str``, audio as mono float waveforms with a sample rate.

    Example::

        register("my-scans", "my_plugin.scans:ScanFolder", modality="image",
                 description="Grey-scale scans from a folder")
    """


@hookspec
def aigc_register_generators(register):
    """Register generators: models that learn from a data source and make new content.

    A generator is a subclass of ``aigc_core.Generator`` (a plain ``torch.nn.Module``) with a
    ``Params`` model for its architecture and a ``GenerateOptions`` model for ``generate``'s
    options (both subclasses of ``aigc_core.Params``, pydantic models). It holds what sampling
    needs, owns its checkpoint, and implements ``generate(n, seed, options) -> Content``
    deterministically for a given seed, where ``options`` is its validated ``GenerateOptions``
    object (``aigc_core.Inference`` merges and validates it, checks a ``label`` against
    ``num_classes``, and holds the model in eval mode without autograd). Its class attribute ``training`` names
    (``"module:Class"``) the subclass of ``aigc_core.GeneratorTraining``, a ``LightningModule``
    wrapping it, that holds the preprocessing, training step and training-only networks; only
    ``aigc run`` imports it, so ``aigc generate`` and ``aigc serve`` never load Lightning.

    Example::

        register("dcgan", "aigc_gan.model:DCGAN", modality="image",
                 description="Deep convolutional GAN")
    """


@hookspec
def aigc_register_postprocessors(register):
    """Register post-processors: steps that change or drop generated items.

    A post-processor is a subclass of ``aigc_core.PostProcessor`` with a ``Params`` model and
    ``__call__(content) -> Content``. It may change items (denoise, normalise loudness, redact) or
    drop them (quality gates, with ``content.drop(item, by, reason)``). ``modality`` lists what
    it accepts; ``aigc check`` refuses a pipeline that feeds it anything else.

    Example::

        register("invert", "my_plugin.post:Invert", modality="image",
                 description="Swap black and white")
    """


@hookspec
def aigc_register_metrics(register):
    """Register metrics: scores of a trained generator against held-out real data.

    A metric is a subclass of ``aigc_core.Metric`` with a ``Params`` model and
    ``compute(context) -> dict[str, float]``; ``context`` is an ``aigc_core.MetricContext``
    giving the generator, the data source, the generated content and a cache directory.
    Metrics run offline: nothing may be downloaded.

    Example::

        register("mean-brightness", "my_plugin.metrics:Brightness", modality="image")
    """


@hookspec
def aigc_register_exporters(register):
    """Register exporters: writers of finished content to files (PNG, WAV, TXT...).

    An exporter is a subclass of ``aigc_core.Exporter`` with a ``Params`` model and
    ``export(content, directory) -> list[Path]``. It must write each file under a temporary
    name and rename it (``aigc_core.atomic_write``). A pipeline uses ``output.exporter`` or, by
    default, the exporter registered under the modality's own name (``image``, ``text``, ``audio``).

    Example::

        register("webp", "my_plugin.export:WebP", modality="image")
    """
