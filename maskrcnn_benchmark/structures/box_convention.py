"""The benchmark's "+1 pixel" box convention, kept in one place.

Detectron-era code treats box coordinates as inclusive pixel indices, so a box
(x1, x2) spans ``x2 - x1 + 1`` pixels, images are clipped to ``[0, w - 1]`` and a
horizontal flip maps ``x`` to ``w - x - 1``. Benchmark checkpoints and the
benchmark's metrics were produced under this convention, so every place that
reproduces them passes ``legacy=True`` (the default). ``legacy=False`` gives the
continuous convention of torchvision.
"""

LEGACY_PIXEL_OFFSET = 1.0


def pixel_offset(legacy: bool) -> float:
    """The amount added to ``x2 - x1`` to get a width under the chosen convention."""
    return LEGACY_PIXEL_OFFSET if legacy else 0.0
