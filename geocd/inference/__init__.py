"""Tiled, streamed inference on scene pairs."""
