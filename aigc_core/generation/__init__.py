"""From a trained model to content: ``Inference`` (defaults, options, seed, generate, stamp,
post-process, export) and the low-rank adapters a personalised model is made of.
"""
