"""A build that cannot start creates nothing: no output folder with only a lock and a marker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from archive_builder.archive.build import BuildOptions, build
from archive_builder.errors import DataDirError


def test_unknown_village_creates_no_output_folder(tmp_path: Path, make_data_dir: Callable[..., Path]) -> None:
    data = make_data_dir()
    with pytest.raises(DataDirError, match="找不到村"):
        build(data, tmp_path / "out", BuildOptions(villages=("不存在村",), jobs=1))
    assert not (tmp_path / "out").exists()


def test_no_archive_toml_creates_no_output_folder(tmp_path: Path) -> None:
    (tmp_path / "not-data").mkdir()
    with pytest.raises(DataDirError, match="archive.toml"):
        build(tmp_path / "not-data", tmp_path / "out", BuildOptions(jobs=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-data"]
