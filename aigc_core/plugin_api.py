"""Plugin API versions, one attribute per major version.

A plugin declares the version it targets with an entry point in the group ``aigc.api`` whose name
is its plugin name and whose value points here::

    [project.entry-points."aigc.api"]
    my-plugin = "aigc_core.plugin_api:v4"

That value is a valid entry-point object reference, so every packaging tool accepts it, and the
core reads the major version from the text alone: a plugin built for another major version is
reported and skipped before any of its code is imported.

Version 4 changed one thing: options are declared once. A generator's ``generate(n, seed,
options)`` (and ``stream(seed, options)``) receives its ``GenerateOptions`` object, validated and
merged with the run's defaults, instead of each option as a keyword argument repeating its default;
``aigc_core.Inference`` holds the network in eval mode without autograd (and restores its mode),
checks a ``label`` option against the generator's ``num_classes`` and bounds the seed, so a
generator does none of these itself.

Version 3 changed one thing: a generator is a plain ``torch.nn.Module`` (``aigc_core.Generator``)
and its training a separate ``aigc_core.GeneratorTraining`` (a ``LightningModule``) it names in
``Generator.training``, so generating from a finished run never imports Lightning.

Version 2 changed one thing: parameters. A component's ``Params`` (and a generator's
``GenerateOptions``) are pydantic models, subclasses of ``aigc_core.Params``, instead of
dataclasses with a ``validate()`` method; their JSON Schema drives the config checks, the web
form, ``aigc plugins info`` and the docs.
"""

#: Major version 1: parameters were dataclasses with ``validate()``. No longer loaded.
v1 = "1.0"
#: Major version 2: a generator was itself a ``LightningModule``. No longer loaded.
v2 = "2.0"
#: Major version 3: generate() took each option as a keyword argument. No longer loaded.
v3 = "3.0"
#: Major version 4 of the hooks in ``aigc_core.hookspecs`` and the bases plugins subclass.
v4 = "4.0"

#: What the author of a version-1 plugin changes to reach version 2, in one line.
FROM_V1 = (
    "make each Params and GenerateOptions a subclass of aigc_core.Params instead of a @dataclass; "
    "write each field as `name: type = Field(default, description=\"...\")` (the trailing comment becomes "
    "the description); replace validate() by Field bounds (ge=, gt=, le=, lt=, min_length=) and, for checks "
    "across fields, a @model_validator(mode=\"after\") raising aigc_core.ParamError(\"key\", \"message\"); "
    "use params.model_dump() where dataclasses.asdict(params) was; then declare "
    "\"aigc_core.plugin_api:v2\" in [project.entry-points.\"aigc.api\"] (docs/writing-plugins.md)"
)

#: What the author of a version-2 plugin changes to reach version 3, in one line.
FROM_V2 = (
    "move each generator's training hooks (training_step, configure_optimizers, validation_step, "
    "datamodule) and training-only networks into a subclass of aigc_core.GeneratorTraining that reaches "
    "the generator as self.generator; name it on the generator as training = \"package.module:Class\"; "
    "keep in the generator only what generate() needs, under the same attribute names (its saved runs "
    "still load); then declare \"aigc_core.plugin_api:v3\" in [project.entry-points.\"aigc.api\"] "
    "(docs/writing-plugins.md)"
)

#: What the author of a version-3 plugin changes to reach version 4, in one line.
FROM_V3 = (
    "write each generator's generate(self, n, seed, **options) as generate(self, n, seed, options) and "
    "read options.NAME (the GenerateOptions fields and their defaults are the only declaration: drop "
    "them from the signature; keep start= and data_source= where declared), and stream(self, seed, "
    "options) likewise; drop from generate and stream what Inference now does: eval()/train() around "
    "the work, @torch.no_grad(), checks of a label option against the classes (set self.num_classes, "
    "and self.classes for a label given by name, instead) and of the seed; call a bare model in tests "
    "with aigc_core.testing.generate(model, n, seed, **options); then declare "
    "\"aigc_core.plugin_api:v4\" in [project.entry-points.\"aigc.api\"] (docs/writing-plugins.md)"
)


def dataclass_params(cls: type) -> str | None:
    """The attribute of component class ``cls`` still declared as a version-1 dataclass, if any."""
    for attr in ("Params", "GenerateOptions"):
        if hasattr(getattr(cls, attr, None), "__dataclass_fields__"):
            return attr
    return None
