"""Audio for aigc: a class-conditional log-mel VAE vocoded with torchaudio, and a classifier metric.

The hook module is ``aigc_audio.plugin``; the model ``aigc_audio.model``; the mel features and their
inversion ``aigc_audio.features``; the metric ``aigc_audio.metrics``.
"""
