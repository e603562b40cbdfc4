"""Content hashes: what decides whether a household must be rendered again.

A household's hash covers its canonical record, the bytes of its evidence files, the
village and archive settings that print on its pages, the template set, the fonts and the
program version — never file times.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from . import __version__

_CHUNK = 1 << 20


def canonical_json(value: Any) -> bytes:
    """Return the canonical JSON bytes of ``value`` (sorted keys, UTF-8, no spaces)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=_default).encode()


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Path):
        return value.as_posix()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def file_sha256(path: Path) -> str | None:
    """Return the sha256 of a file's bytes, or None when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def evidence_hashes(sources: Iterable[tuple[str, Path]]) -> dict[str, str]:
    """Return ``{display path: sha256 or "missing"}`` for the given evidence files."""
    return {display: file_sha256(path) or "missing" for display, path in sources}


def household_hash(
    record: Mapping[str, Any],
    *,
    evidence: Mapping[str, str],
    settings: Mapping[str, Any],
    template_fingerprint: str,
    font_fingerprint: str,
) -> str:
    """Return the household's content hash (hex sha256)."""
    digest = hashlib.sha256()
    for part in (
        canonical_json(record),
        canonical_json(dict(evidence)),
        canonical_json(dict(settings)),
        template_fingerprint.encode(),
        font_fingerprint.encode(),
        __version__.encode(),
    ):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()
