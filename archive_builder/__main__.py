"""``python -m archive_builder``: the same as the ``archive-builder`` command."""

from __future__ import annotations

from archive_builder.cli import entry

if __name__ == "__main__":
    entry()
