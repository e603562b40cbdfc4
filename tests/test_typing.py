"""The package type-checks (mypy, configured in setup.cfg): a typing slip is a test failure."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_package_type_checks(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    stdout, stderr, status = api.run([
        "--config-file", str(REPO / "setup.cfg"), "--cache-dir", str(tmp_path / "mypy"),
        str(REPO / "archive_builder"),
    ])
    assert status == 0, stdout + stderr
