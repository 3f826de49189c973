"""Text generation for aigc. The hook module is ``aigc_text.plugin``; the model, ``aigc_text.model``."""
