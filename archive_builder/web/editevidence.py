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
    from ..render.evidence import HINT_HEIF, REASON_HEIF, _is_heif, _register_heif

    if (_is_heif(data) or suffix in (".heic", ".heif")) and not _register_heif():
        raise core.UploadError(REASON_HEIF, hint=HINT_HEIF)
    kind = _decoded_image(data, suffix)
    if kind not in _FORMATS:
        raise core.UploadError(f"不支持这种图片格式：{kind or suffix}", hint="请另存为 JPG 或 PNG 后上传")
    return _FORMATS[kind]


_NOT_A_PICTURE = "上传的文件不是可识别的图片或 PDF，或已损坏"
_FORMATS_HINT = "支持 JPG、PNG、TIF、HEIC（需安装解码组件）照片和 PDF 扫描件"


def _too_large(pixels: int | None, limit: int) -> core.UploadError:
    size = f"（约 {pixels // 10_000} 万像素）" if pixels else ""
    return core.UploadError(
        f"上传的图片太大{size}：超过 {limit // 10_000} 万像素的安全上限，未接收",
        hint="请用手机或电脑的图片软件把图片缩小（例如长边不超过 10000 像素），或另存为 JPG 后重新上传")


def _open_image(data: bytes) -> Any:
    """The picture opened by one of the accepted formats' decoders (no other decoder sees it).

    A JPEG is opened even beyond Pillow's header check: like the packet, it is judged by the
    size it decodes to at 1/8 scale (a 150-megapixel phone panorama prints fine).
    """
    from PIL import Image, JpegImagePlugin

    Image.init()
    formats = [name for name in _FORMATS if name in Image.OPEN]
    try:
        return Image.open(io.BytesIO(data), formats=formats)
    except Image.DecompressionBombError:
        if not data.startswith(b"\xff\xd8"):
            raise
        return JpegImagePlugin.JpegImageFile(io.BytesIO(data))


def _decoded_image(data: bytes, suffix: str) -> str:
    """The Pillow format of an uploaded picture, every frame decoded in full first (so a cut-off
    or damaged file is refused now, not printed later as a placeholder); UploadError otherwise.

    Within the packet's limits: a JPEG is decoded at 1/8 scale (every byte of it still read),
    any other picture only when its pixels are within Pillow's safety limit.
    """
    import warnings

    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS or 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # judged below instead
            with _open_image(data) as image:
                kind = image.format or ""
                if kind not in _FORMATS:
                    return kind
                for index in range(getattr(image, "n_frames", 1) if kind == "TIFF" else 1):
                    if index:
                        image.seek(index)
                    if kind in ("JPEG", "MPO"):
                        image.draft("RGB", (1, 1))  # DCT scaled to 1/8: the whole stream is still decoded
                    pixels = image.size[0] * image.size[1]
                    if limit and pixels > limit:
                        raise _too_large(pixels, limit)
                    image.load()
    except core.UploadError:
        raise
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise _too_large(int(found.group(1)) if found else None, limit) from exc
    except MemoryError as exc:
        raise _too_large(None, limit) from exc
    except OSError as exc:
        if "truncated" in str(exc) or "broken data stream" in str(exc):
            raise core.UploadError("上传的图片数据不完整（文件被截断，可能是拷贝或传输中断），未接收",
                                   hint="请用原始照片重新上传；在手机或电脑上先打开看看是否完整") from exc
        raise core.UploadError(_NOT_A_PICTURE, hint=_FORMATS_HINT) from exc
    except Exception as exc:  # decoders raise anything on a damaged file
        raise core.UploadError(_NOT_A_PICTURE, hint=_FORMATS_HINT) from exc
    return kind


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
