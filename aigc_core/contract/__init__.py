"""The contract: what a plugin implements and the values every stage hands on.

Errors, ``Content`` and the ``Modality`` registry, typed parameters, the component bases
(data source, generator and its training module, post-processor, exporter, metric), and the
ambient services a component calls (progress, cancellation, per-sample seeds, atomic writes).
Everything else in aigc_core is built on these; they import nothing above them (the one
exception: ``modalities`` registers the built-in plugin's modalities on first use).
"""
