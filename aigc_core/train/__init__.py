"""What Lightning drives: training (``training.fit``), sharded generation over several devices
(``sharding``), whether this machine can run a layout (``layout``) and the start-up guard.
"""
