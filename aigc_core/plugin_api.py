"""Plugin API versions, one attribute per major version.

A plugin declares the version it targets with an entry point in the group ``aigc.api`` whose name
is its plugin name and whose value points here::

    [project.entry-points."aigc.api"]
    my-plugin = "aigc_core.plugin_api:v1"

That value is a valid entry-point object reference, so every packaging tool accepts it, and the
core reads the major version from the text alone: a plugin built for another major version is
reported and skipped before any of its code is imported.
"""

#: Major version 1 of the hooks in ``aigc_core.hookspecs`` and the bases plugins subclass.
v1 = "1.0"
