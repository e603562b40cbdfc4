"""Shared fixtures. ``make_data_dir`` builds a data directory in ``tmp_path`` from dicts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from datadir import write_data_dir


@pytest.fixture
def make_data_dir(tmp_path: Path) -> Callable[..., Path]:
    """Return ``make(households=None, *, villages=None, archive=..., name="data") -> Path``.

    With no arguments: one village (冯老村) holding one valid household. See
    ``tests/datadir.py`` for the record helpers (``valid_household``, ``make_id``, ``mutate``).
    """

    def make(
        households: list[dict[str, Any]] | None = None,
        *,
        name: str = "data",
        **options: Any,
    ) -> Path:
        return write_data_dir(tmp_path / name, households, **options)

    return make


@pytest.fixture(scope="session")
def font_set():
    """The process-wide FontSet (discovered and registered once per test process)."""
    from archive_builder.packet import font_set as process_font_set

    return process_font_set()
