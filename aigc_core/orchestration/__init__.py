"""The Python API over the flow: ``Pipeline`` (config to components to a run), ``Run`` (a
finished run, loaded) and personalisation (a base and its adapter).
"""
