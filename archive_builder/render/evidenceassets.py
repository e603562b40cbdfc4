"""What an evidence file becomes (the asset kinds) and the Chinese reasons and hints for one
that cannot be used, with the warnings the build shows about them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: Bump when the normalisation changes what is written, so old cache entries are ignored.
#: 3: PDF pages with unembedded fonts are rasterised.
#: 4: PDF pages are placed from a sanitised copy (no actions, scripts, attachments, forms).
CACHE_VERSION = 4

MM_PER_INCH = 25.4
DEFAULT_HINT = "请重新扫描或替换该文件。"

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".tif", ".tiff", ".gif", ".bmp", ".webp"}
)
HEIF_SUFFIXES = frozenset({".heic", ".heif", ".hif"})
PDF_SUFFIXES = frozenset({".pdf"})
SUPPORTED_SUFFIXES = IMAGE_SUFFIXES | HEIF_SUFFIXES | PDF_SUFFIXES
# Only these decoders may look at evidence bytes: a smaller attack surface than "any format".
PIL_FORMATS = ("JPEG", "MPO", "PNG", "TIFF", "GIF", "BMP", "WEBP")

REASON_MISSING = "文件不存在"
REASON_DIRECTORY = "该路径是文件夹，不是文件"
REASON_EMPTY = "文件为空（0 字节）"
REASON_NOT_REGULAR = "不是普通文件（是管道、设备或套接字）"
HINT_NOT_REGULAR = "请把实际的文件（照片、扫描件或 PDF）放在这里。"
REASON_CORRUPT = "文件已损坏或格式无法识别"
REASON_TRUNCATED = "图片数据不完整（文件被截断，可能是拷贝或上传中断）"
REASON_BOMB = "图片像素超过安全上限（可能是解压炸弹）"
REASON_ENCRYPTED = "PDF 已加密，需要密码才能打开"
REASON_PDF_EMPTY = "PDF 中没有任何页面"
NOTE_UNEMBEDDED_FONTS = "使用了未嵌入的字体"
REASON_HEIF = "HEIC/HEIF 图片需要解码组件 pillow-heif，当前未安装"

HINT_HEIF = "请安装解码组件（pip install pillow-heif）后重新生成，或把照片另存为 JPEG。"
HINT_UNSUPPORTED = "请把该文件转换为 PDF、JPEG 或 PNG 后替换。"
HINT_ENCRYPTED = "请提供未加密的 PDF（在阅读器中输入密码后另存或打印为 PDF）。"
HINT_MISSING = "请检查文件名和位置是否与记录一致，或补充该文件。"
HINT_BOMB = "请用图片软件把该图片缩小（例如长边不超过 10000 像素）后替换。"


def missing_reported(reason: str) -> bool:
    """Whether a placeholder's reason is one validation has already reported for the record:
    a missing evidence file is (with its line and the nearest file name), so the render does
    not warn of it a second time."""
    return reason == REASON_MISSING


@dataclass(frozen=True, slots=True)
class ImageAsset:
    """One normalised raster, ready to embed (JPEG, or PNG for bilevel scans).

    Its bytes are in the cache file ``path``, or, for a print-size JPEG passed through as it
    is, in ``data`` (``path`` None): stripping its metadata costs less than a cache file.
    Read them with :meth:`image_bytes`, never from ``source`` (which still has GPS positions).
    """

    path: Path | None
    width_px: int  # after orientation fix and downscale
    height_px: int
    source: Path
    page: int  # 0-based frame index in the source
    #: why a PDF page was rasterised instead of merged (Chinese, e.g. NOTE_UNEMBEDDED_FONTS);
    #: empty for ordinary images
    note: str = ""
    data: bytes | None = field(default=None, repr=False)
    #: kinds of active content removed from the source PDF (see ``pdfclean.LABELS``)
    removed: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """"jpg" or "png"."""
        if self.data is not None:
            return "jpg"
        assert self.path is not None
        return "png" if self.path.suffix.lower() == ".png" else "jpg"

    def image_bytes(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()


@dataclass(frozen=True, slots=True)
class PdfPageAsset:
    """One page of an evidence PDF; width/height are the displayed size (after /Rotate)."""

    source: Path
    page: int
    width_pt: float
    height_pt: float
    rotation: int  # 0, 90, 180 or 270, clockwise as in /Rotate
    #: the sanitised copy in the cache (page content only) that is placed instead of ``source``
    path: Path | None = field(default=None, compare=False)
    #: kinds of active content removed from the source (see ``pdfclean.LABELS``)
    removed: tuple[str, ...] = field(default=(), compare=False)

    @property
    def placed(self) -> Path:
        """The file whose page is placed: the sanitised copy when there is one."""
        return self.path if self.path is not None else self.source


@dataclass(frozen=True, slots=True)
class Placeholder:
    """The file could not be used; ``reason`` (Chinese) says why, ``hint`` how to fix it."""

    source: Path
    display_path: str
    reason: str
    hint: str = DEFAULT_HINT


Asset = ImageAsset | PdfPageAsset | Placeholder


def asset_warning(
    household_id: str, display_path: str, reason: str, *, hint: str | None = None
) -> str:
    """Return the Chinese warning line for an evidence file replaced by a placeholder."""
    fix = hint or DEFAULT_HINT
    return (
        f"户 {household_id} 的佐证材料 {display_path} 无法读取（{reason}），"
        f"已用占位页代替；{fix}"
    )


def raster_warning(display_path: str, asset: ImageAsset, *more: ImageAsset) -> str:
    """Return the one Chinese warning for the pages of a PDF placed as images for the same
    reason (``asset.note``): "第 1–3、5 页"."""
    pages = sorted({a.page + 1 for a in (asset, *more)})
    runs: list[list[int]] = []
    for page in pages:
        if runs and page == runs[-1][-1] + 1:
            runs[-1].append(page)
        else:
            runs.append([page])
    shown = "、".join(str(r[0]) if len(r) == 1 else f"{r[0]}–{r[-1]}" for r in runs)
    return f"佐证材料 {display_path} 第 {shown} 页{asset.note}，已转为图像以保证打印一致"


def removed_warning(display_path: str, removed: tuple[str, ...]) -> str:
    """Return the Chinese warning for an evidence PDF whose active content was removed."""
    from .pdfclean import describe

    return (
        f"佐证材料 {display_path} 含有{describe(removed)}，已去除，只保留页面上打印的内容"
    )


class _Unusable(Exception):
    """Internal: the source cannot be used; carries the Chinese reason and hint."""

    def __init__(self, reason: str, hint: str = DEFAULT_HINT) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint
