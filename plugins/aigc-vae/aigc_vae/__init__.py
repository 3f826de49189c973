"""The VAE plugin for aigc. Nothing heavy is imported here: discovery must stay cheap."""

__version__ = "0.1.0"
