"""Evidence files uploaded from the edit form: checked (kind, size, that it opens), named
safely in the household's folder, and the record's evidence list updated; a replaced file
is retired (kept under a new name) rather than deleted.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import secrets
from pathlib import Path
from typing import Any

from ..records import yamlwrite
from ..records.yamlwrite import ORIGIN
from . import core

# --- evidence uploads -----------------------------------------------------------------------------

_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "HEIF": ".heic", "MPO": ".jpg"}
ALLOWED_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".heic", ".heif", ".pdf")


def checked_evidence(data: bytes, filename: str) -> str:
    """The suffix to store an uploaded evidence file under; UploadError when it is unusable."""
    suffix = Path(filename).suffix.lower()
    if not data:
        raise core.UploadError("上传的文件是空的", hint="请重新选择文件")
    if data.startswith(b"%PDF-"):
        from pypdf import PdfReader

        try:
            pages = len(PdfReader(io.BytesIO(data)).pages)
        except Exception as exc:
            raise core.UploadError("上传的 PDF 无法打开：文件已损坏或加了密码", hint="请重新扫描或另存后上传") from exc
        if pages < 1:
            raise core.UploadError("上传的 PDF 没有页面", hint="请重新扫描后上传")
        return ".pdf"
    from PIL import Image

    from ..render.evidence import HINT_HEIF, REASON_HEIF, _is_heif, _register_heif

    if (_is_heif(data) or suffix in (".heic", ".heif")) and not _register_heif():
        raise core.UploadError(REASON_HEIF, hint=HINT_HEIF)
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format or ""
            image.verify()
    except Exception as exc:
        raise core.UploadError("上传的文件不是可识别的图片或 PDF，或已损坏",
                               hint="支持 JPG、PNG、TIF、HEIC（需安装解码组件）照片和 PDF 扫描件") from exc
    if kind not in _FORMATS:
        raise core.UploadError(f"不支持这种图片格式：{kind or suffix}", hint="请另存为 JPG 或 PNG 后上传")
    return _FORMATS[kind]


def safe_evidence_name(folder: Path, kind: str, title: str, suffix: str) -> str:
    """A new file name inside ``folder``: ``类型_名称.jpg`` made safe, never an existing one."""
    from ..archive.outdir import safe_file_name

    stem = re.sub(r"\s+", "_", safe_file_name(f"{kind or '材料'}_{title}" if title else kind or "材料"))[:40]
    stem = stem.strip("._") or "材料"
    name, number = f"{stem}{suffix}", 1
    while (folder / name).exists():
        number += 1
        name = f"{stem}_{number}{suffix}"
    return name


def unretire(folder: Path, retired: str, file: str) -> None:
    """Undo ``retire`` (the save that needed it failed)."""
    source, target = folder / retired, folder / file
    if source.is_file() and not target.exists():
        source.rename(target)


def retire(folder: Path, file: str) -> str | None:
    """Rename a replaced evidence file to ``名称_已替换_时间.后缀`` (kept, never deleted)."""
    from ..records.loader import EvidencePathError, resolve_evidence

    try:
        path = resolve_evidence(folder, file)
    except EvidencePathError:
        return None
    if not path.is_file():
        return None
    stamp = dt.datetime.now().strftime("%Y%m%d%H%M%S")
    target = path.with_name(f"{path.stem}_已替换_{stamp}{path.suffix}")
    while target.exists():
        target = path.with_name(f"{path.stem}_已替换_{stamp}_{secrets.token_hex(2)}{path.suffix}")
    path.rename(target)
    return target.relative_to(folder.resolve()).as_posix()


def evidence_wanted(doc: dict[str, Any], index: int | None, file: str, kind: str, title: str,
                    when: dt.date | None) -> dict[str, Any]:
    """The ``evidence`` list with one entry added (index None) or one entry's file replaced."""
    items = doc.get("evidence")
    items = items if isinstance(items, list) else []
    wanted: list[Any] = []
    for n, item in enumerate(items):
        entry: dict[str, Any] = dict(item) if isinstance(item, dict) else {"file": item}
        entry[ORIGIN] = n
        if n == index:
            entry["file"] = file
            if kind:
                entry["type"] = kind
            if title:
                entry["title"] = title
            if when is not None:
                entry["date"] = when
        wanted.append(entry)
    if index is None:
        entry = {"file": file, "type": kind or "其他"}
        if title:
            entry["title"] = title
        if when is not None:
            entry["date"] = when
        entry[ORIGIN] = None
        wanted.append(entry)
    return {"evidence": wanted}


def evidence_choices(doc: dict[str, Any]) -> list[tuple[int, str]]:
    items = doc.get("evidence") if isinstance(doc, dict) else None
    out = []
    for n, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, dict):
            out.append((n, f"{item.get('title') or item.get('file')}（{item.get('file')}）"))
        else:
            out.append((n, str(item)))
    return out


def quick_evidence_choices(path: Path) -> list[tuple[int, str]]:
    """``evidence_choices`` of a record file read by the fast loader (for the household page)."""
    import json

    from ..records.loader import load_yaml

    try:
        text, _bom = yamlwrite.decode(path.read_bytes())
        doc = json.loads(text) if path.suffix.lower() == ".json" else load_yaml(text)
    except Exception:  # noqa: BLE001 - an unreadable record: nothing to replace
        return []
    return evidence_choices(doc) if isinstance(doc, dict) else []


def evidence_types() -> list[str]:
    from ..records import vocab

    return list(vocab.get("evidence_type").labels)
