"""What a run keeps on disk: its configuration, its directory (layout, manifest, every deletion),
its checkpoints (when, what, how they are written and read) and its loss plot.
"""
