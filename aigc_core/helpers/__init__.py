"""Shared helpers that components and the flow both use, none of them part of the flow itself:
Frechet distance, image grids and PNG/GIF bytes, the cached feature classifier, pretrained
bases from a folder or the hub, process ranks, the allocator tuning and passive thread waits.
"""
