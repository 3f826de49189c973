"""Audio for aigc: a class-conditional log-mel VAE vocoded with torchaudio, and a classifier metric.

The hook module is ``aigc_audio.plugin``; the models ``aigc_audio.model`` (mel-vae) and
``aigc_audio.vocoder`` (mel-vocoder), plain torch, and the LightningModules that train them
``aigc_audio.vae_training`` and ``aigc_audio.vocoder_training``, imported only by ``aigc run``; the
mel features and their inversion ``aigc_audio.features``; the metrics ``aigc_audio.metrics``.
"""
