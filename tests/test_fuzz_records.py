"""Random mutations of a valid record never produce a traceback: only problems."""

from __future__ import annotations

import copy
import json
import os
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from datadir import valid_household, write_data_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive_builder.records.loader import load_dataset
from archive_builder.validate import check_data_dir, format_report, validate_dataset

ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            "𠮷",
            "../x",
            "/etc/passwd",
            "2024-02-30",
            "2024-13",
            "是",
            "x" * 500,
            "1e999",
            "NaN",
        ]
    ),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.dates(date(1, 1, 1), date(9999, 12, 31)),
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _apply(
    record: dict[str, Any], path: tuple[Any, ...], action: str, value: Any
) -> None:
    parent: Any = record
    for part in path[:-1]:
        parent = parent[part]
    key = path[-1]
    if action == "delete":
        del parent[key]
    elif action == "replace":
        parent[key] = value
    elif action == "wrap":
        parent[key] = [parent[key]]


PATHS = _paths(valid_household())
MUTATION = st.tuples(
    st.sampled_from(PATHS), st.sampled_from(["delete", "replace", "wrap"]), ODD_VALUES
)


@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    mutations=st.lists(MUTATION, min_size=1, max_size=4),
    fmt=st.sampled_from(["yaml", "json"]),
)
def test_mutated_records_give_problems_not_tracebacks(
    tmp_path_factory: Any, mutations: list[Any], fmt: str
) -> None:
    record = valid_household()
    for path, action, value in mutations:
        try:
            _apply(record, path, action, copy.deepcopy(value))
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed the parent
    root = tmp_path_factory.mktemp("fuzz")
    if fmt == "json":
        text = json.dumps(record, ensure_ascii=False, default=str)
    else:
        text = yaml.safe_dump(record, allow_unicode=True)
    write_data_dir(root, [{"_text": text, "_format": fmt, "_folder": "h"}])
    dataset = load_dataset(root)
    problems = validate_dataset(dataset, today=date(2025, 6, 1))
    assert all(p.message and p.hint for p in problems)
    assert format_report(check_data_dir(root, today=date(2025, 6, 1)))


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")), deadline=None)
@given(text=st.text(max_size=300))
def test_arbitrary_text_as_yaml(tmp_path_factory: Any, text: str) -> None:
    root = tmp_path_factory.mktemp("text")
    write_data_dir(root, [{"_text": text, "_folder": "h"}])
    _check_reported(root, 1)


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "100")), deadline=None)
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes(tmp_path_factory: Any, data: bytes) -> None:
    root: Path = tmp_path_factory.mktemp("bytes")
    write_data_dir(
        root,
        [
            {"_text": data, "_folder": "h"},
            {"_text": data, "_folder": "j", "_format": "json"},
        ],
    )
    _check_reported(root, 2)


def _check_reported(root: Path, households: int) -> None:
    """Whatever a record file holds, loading and validating it raise nothing; every
    household folder is seen, and one without a usable record has an error that names it,
    with a message and a hint."""
    dataset = load_dataset(root)
    problems = validate_dataset(dataset, today=date(2025, 6, 1))
    assert all(p.message and p.hint for p in problems)
    seen = [h for _, h in dataset.households()]
    assert len(seen) == households
    for household in seen:
        if household.record is None:
            assert any(p.is_error and (p.file or "").startswith(household.display.split("/")[0])
                       for p in problems), household.display
