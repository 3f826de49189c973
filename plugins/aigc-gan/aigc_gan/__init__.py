"""DCGAN images for aigc. The hook module is ``aigc_gan.plugin``; the model, ``aigc_gan.model``."""
