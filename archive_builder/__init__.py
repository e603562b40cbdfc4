"""archive-builder: turns household records into poverty-alleviation archive packets (档卡)."""

from __future__ import annotations

__version__ = "0.2.0"
