"""The units configuration values are written in: durations in seconds, sizes in bytes.

Defaults in the models are spelled in these names (``15 * SECONDS``, ``25 * MEGABYTES``)
so a reader sees the unit instead of counting zeros.
"""

from __future__ import annotations

__all__ = ["HOURS", "MEGABYTES", "MINUTES", "SECONDS"]

SECONDS = 1.0
MINUTES = 60 * SECONDS
HOURS = 60 * MINUTES
MEGABYTES = 1_000_000
