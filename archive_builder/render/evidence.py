"""Evidence files (佐证材料) → printable page assets, with a content-addressed cache.

An evidence file becomes one asset per page or frame:

* ``ImageAsset`` – a normalised raster (upright, 8-bit RGB or L, downscaled so that it is
  at most ``dpi`` dots per inch when fitted into the text block) stored in the cache dir;
* ``PdfPageAsset`` – one page of an evidence PDF, which the PDF writer merges scaled-to-fit;
  a page that uses a font without an embedded program (bank statements written with the
  standard Helvetica, many scanner exports) is rasterised instead, with pdfium at ``dpi``,
  and becomes an ``ImageAsset`` whose ``note`` says why: the archive requires every font
  embedded, and an unembedded font prints with whatever the printer substitutes;
* ``Placeholder`` – the file could not be used; ``reason`` is Chinese and says why.

``EvidenceCache.assets`` never raises for a bad evidence file.  Errors of the cache
directory itself (not writable, disk full) do propagate: they are the run's problem, not
the household's, and the build checks the output locations before it starts.

Cache layout (all writes atomic: temp file in the same dir, then ``os.replace``)::

    <cache_dir>/<kk>/<key>.json       manifest: the assets of one source (sizes, pages)
    <cache_dir>/<kk>/<key>-<n>.jpg    normalised frame n (``.png`` for bilevel scans)
    <cache_dir>/stat/<ph>.json        path hash → (size, mtime_ns, ctime_ns, key)

``key`` = sha256 over the source bytes, the normalisation parameters, ``CACHE_VERSION``
and the Pillow version (a new Pillow may encode other bytes).  Looking up the key hashes
the file (≈ 3 ms for a 4 MB photo), so a lookup first tries the stat index: if path, size,
mtime_ns and ctime_ns are unchanged the stored key is used without reading the file.  ctime
cannot be set by ordinary tools, so an edited file of the same size and a restored mtime is
still noticed.  Parallel workers may compute the same entry at the same time: both write
identical bytes and the last ``os.replace`` wins, so races are harmless.  Placeholders are
never cached (a missing or locked file may be fixed before the next run).

Output carries no metadata: EXIF is dropped (the orientation is already applied, and phone
photos carry GPS positions that must not travel into the archive), and an embedded ICC
profile is converted to sRGB once instead of kept, because the PDF declares DeviceRGB and
viewers ignore a profile inside the JPEG stream.

Why one module of this size: every evidence format's normalisation (JPEG pass-through, re-
encoding, TIFF, PDF pages, HEIF) goes through one content-addressed cache and one set of
Chinese placeholder reasons.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import PIL
from PIL import Image, ImageFile

from ..errors import os_reason

logger = logging.getLogger(__name__)

#: Bump when the normalisation changes what is written, so old cache entries are ignored.
#: 3: PDF pages with unembedded fonts are rasterised.
CACHE_VERSION = 3

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


def open_evidence_pdf(source: Path) -> Any:
    """Return a ``pypdf.PdfReader`` for an evidence PDF, decrypted if the password is empty.

    Owner-password-only PDFs (bank statements) are common; the writer must decrypt them
    the same way before merging pages.
    """
    from pypdf import PdfReader

    reader = PdfReader(source, strict=False)
    if reader.is_encrypted:
        reader.decrypt("")
    return reader


class _Unusable(Exception):
    """Internal: the source cannot be used; carries the Chinese reason and hint."""

    def __init__(self, reason: str, hint: str = DEFAULT_HINT) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


class EvidenceCache:
    """Normalises evidence files into page assets, cached by content in ``cache_dir``."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        dpi: int = 200,
        max_box_mm: tuple[float, float] = (156.0, 225.0),
        jpeg_quality: int = 85,
    ) -> None:
        if dpi <= 0 or jpeg_quality <= 0 or min(max_box_mm) <= 0:
            raise ValueError("dpi, jpeg_quality and max_box_mm must be positive")
        self.cache_dir = Path(cache_dir)
        self.dpi = dpi
        self.max_box_mm = (float(max_box_mm[0]), float(max_box_mm[1]))
        self.jpeg_quality = jpeg_quality
        self._box_px = (
            self.max_box_mm[0] / MM_PER_INCH * dpi,
            self.max_box_mm[1] / MM_PER_INCH * dpi,
        )
        params = f"v{CACHE_VERSION}|pil{PIL.__version__}|{dpi}|{self.max_box_mm}|q{jpeg_quality}"
        self._params = params.encode()
        # (abspath, size, mtime_ns, ctime_ns) → content key; saves the index read per process.
        self._memo: dict[tuple[str, int, int, int], str] = {}

    # ----------------------------------------------------------------- public API

    def assets(self, source: Path, *, display_path: str) -> list[Asset]:
        """Return one asset per page/frame of ``source``; ``[Placeholder]`` if unusable."""
        source = Path(source)
        try:
            return self._assets(source)
        except _Unusable as e:
            return [Placeholder(source, display_path, e.reason, e.hint)]

    def target_size(self, width: int, height: int) -> tuple[int, int]:
        """Return the pixel size an upright image of ``width``×``height`` is reduced to."""
        factor = min(1.0, self._box_px[0] / width, self._box_px[1] / height)
        if factor >= 1.0:
            return width, height
        # Floor, so neither axis exceeds ``dpi`` at the placed size.
        return max(1, int(width * factor)), max(1, int(height * factor))

    # ----------------------------------------------------------------- lookup

    def _assets(self, source: Path) -> list[Asset]:
        suffix = source.suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            shown = suffix or "（无扩展名）"
            raise _Unusable(f"不支持的文件类型：{shown}", HINT_UNSUPPORTED)
        st = _stat(source)
        memo_key = (os.path.abspath(source), st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        key = self._memo.get(memo_key) or self._indexed_key(memo_key)
        if key is not None:
            cached = self._load_manifest(key, source)
            if cached is not None:
                self._memo[memo_key] = key
                return cached
        data = _read(source)
        passed = self._passed_through(data, source)
        if passed is not None:
            return [passed]
        hasher = hashlib.sha256(self._params + b"\0")
        hasher.update(data)  # not concatenated: that copied a 4 MB photo once more (~1 ms)
        key = hasher.hexdigest()
        cached = self._load_manifest(key, source)
        if cached is None:
            entries = self._normalise(data, suffix, key)
            self._write_manifest(key, entries)
            cached = self._load_manifest(key, source)
            assert cached is not None, "manifest just written must load"
        self._write_index(memo_key, key)
        self._memo[memo_key] = key
        return cached

    def _entry_dir(self, key: str) -> Path:
        return self.cache_dir / key[:2]

    def _index_path(self, abspath: str) -> Path:
        # The parameters are part of the name: other settings must not reuse this key.
        path_bytes = abspath.encode("utf-8", "surrogatepass")
        name = hashlib.sha256(self._params + b"\0" + path_bytes).hexdigest()[:32]
        return self.cache_dir / "stat" / f"{name}.json"

    def _indexed_key(self, memo_key: tuple[str, int, int, int]) -> str | None:
        try:
            entry = json.loads(self._index_path(memo_key[0]).read_bytes())
        except (OSError, ValueError):
            return None
        if isinstance(entry, dict) and entry.get("stat") == list(memo_key):
            key = entry.get("key")
            return key if isinstance(key, str) else None
        return None

    def _write_index(self, memo_key: tuple[str, int, int, int], key: str) -> None:
        entry = {"stat": list(memo_key), "key": key}
        _atomic_write(self._index_path(memo_key[0]), json.dumps(entry).encode())

    def _load_manifest(self, key: str, source: Path) -> list[Asset] | None:
        folder = self._entry_dir(key)
        try:
            manifest = json.loads((folder / f"{key}.json").read_bytes())
            result: list[Asset] = []
            for item in manifest["assets"]:
                if item["kind"] == "image":
                    path = folder / item["file"]
                    # A torn or deleted file (crash, manual cleanup) counts as a miss.
                    if path.stat().st_size != item["bytes"]:
                        return None
                    result.append(
                        ImageAsset(
                            path,
                            item["width"],
                            item["height"],
                            source,
                            item["page"],
                            str(item.get("note", "")),
                        )
                    )
                else:
                    result.append(
                        PdfPageAsset(
                            source,
                            item["page"],
                            item["width"],
                            item["height"],
                            item["rotation"],
                        )
                    )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return result or None

    def _write_manifest(self, key: str, entries: list[dict[str, Any]]) -> None:
        body = json.dumps({"version": CACHE_VERSION, "assets": entries}, sort_keys=True)
        _atomic_write(self._entry_dir(key) / f"{key}.json", body.encode())

    # ----------------------------------------------------------------- normalisation

    def _normalise(self, data: bytes, suffix: str, key: str) -> list[dict[str, Any]]:
        if b"%PDF-" in data[:1024]:
            return self._pdf_entries(data, key)
        if (_is_heif(data) or suffix in HEIF_SUFFIXES) and not _register_heif():
            raise _Unusable(REASON_HEIF, HINT_HEIF)
        entries = []
        for page, (blob, ext, width, height) in enumerate(self._encoded_frames(data)):
            name = f"{key}-{page}.{ext}"
            _atomic_write(self._entry_dir(key) / name, blob)
            entries.append(
                {
                    "kind": "image",
                    "file": name,
                    "page": page,
                    "width": width,
                    "height": height,
                    "bytes": len(blob),
                }
            )
        return entries

    def _encoded_frames(self, data: bytes) -> list[tuple[bytes, str, int, int]]:
        """Return (bytes, extension, width, height) per frame; raise ``_Unusable``."""
        if ImageFile.LOAD_TRUNCATED_IMAGES:
            # A programming error elsewhere, raised loudly (outside the placeholder net):
            # with it, a cut-off photo would print as a half-grey picture.
            raise RuntimeError("ImageFile.LOAD_TRUNCATED_IMAGES must stay False")
        Image.init()  # load every plugin, so ``formats`` below are all registered
        allowed = PIL_FORMATS + (("HEIF",) if _HEIF_STATE.get("ok") else ())
        formats = [name for name in allowed if name in Image.OPEN]
        try:
            with warnings.catch_warnings():
                # Pillow warns between 1x and 2x MAX_IMAGE_PIXELS; _decode_frame judges the
                # size actually decoded instead (a JPEG drafted to 1/8 is small).
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data), formats=formats) as img:
                    # (a JPEG that can pass through never gets here: see _passed_through)
                    n_frames = (
                        getattr(img, "n_frames", 1) if img.format == "TIFF" else 1
                    )
                    frames = []
                    for index in range(n_frames):
                        if index:
                            img.seek(index)
                        frames.append(self._encode(*self._decode_frame(img)))
        except _Unusable:
            raise
        except (Image.DecompressionBombError, MemoryError) as e:
            raise _Unusable(REASON_BOMB, HINT_BOMB) from e
        except OSError as e:
            logger.debug("evidence decode failed", exc_info=True)
            # Pillow has no dedicated exception type for truncation.
            truncated = "truncated" in str(e) or "broken data stream" in str(e)
            raise _Unusable(REASON_TRUNCATED if truncated else REASON_CORRUPT) from e
        except Exception as e:  # decoders raise anything on hostile input
            logger.debug("evidence decode failed", exc_info=True)
            raise _Unusable(REASON_CORRUPT) from e
        return frames

    def _passed_through(self, data: bytes, source: Path) -> ImageAsset | None:
        """The asset of a print-size JPEG that needs no pixel change (see ``_pass_through``).

        Nothing is cached for it: reading it and removing its metadata (~0.3 ms) costs less
        than the three cache files would (a village build creates 1,400 fewer files).
        """
        if data[:2] != b"\xff\xd8":
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data), formats=("JPEG",)) as img:
                    passed = self._pass_through(img, data)
        except _Unusable:
            raise
        except Exception:  # noqa: BLE001 - anything odd goes the normal way, which reports it
            return None
        if passed is None:
            return None
        blob, _ext, width, height = passed
        return ImageAsset(None, width, height, source, 0, data=blob)

    def _pass_through(self, img: Image.Image, data: bytes) -> tuple[bytes, str, int, int] | None:
        """Return the original JPEG, metadata removed, when it needs no pixel change at all.

        A print-size photo that is already upright, 8-bit RGB or grey, without a colour profile
        and within the print resolution would only lose quality by being decoded and encoded
        again (and costs ~30 ms). It is not decoded at all: its segments are checked instead
        (baseline or progressive Huffman coding, which every PDF reader decodes, and an end-of-
        image marker after the scan data, which a cut-off copy lacks). Decoding it at 1/8 scale
        only to look for damage cost 2 ms a photo, a tenth of a village build's rendering.
        """
        if img.format != "JPEG" or img.mode not in ("RGB", "L") or img.info.get("icc_profile"):
            return None
        if _orientation(img) not in (0, 1) or self.target_size(*img.size) != img.size:
            return None
        stripped = _strip_jpeg_metadata(data)
        if stripped is None:
            return None
        scan = stripped.index(b"\xff\xda")
        # Scan data cannot contain FF D9 (an FF there is followed by 00 or a restart marker).
        end = stripped.find(b"\xff\xd9", scan)
        if end < 0:
            raise _Unusable(REASON_TRUNCATED)
        # Whatever follows the end of the image goes too: a phone's second picture (MPO depth
        # map, preview) carries its own EXIF, GPS position included.
        width, height = img.size
        return stripped[: end + 2], "jpg", width, height

    def _encode(self, frame: Image.Image, bilevel: bool) -> tuple[bytes, str, int, int]:
        buf = io.BytesIO()
        if bilevel:
            # Text scans stay crisp and small as PNG; JPEG would ring around strokes.
            frame.save(buf, "PNG", compress_level=6)
            ext = "png"
        else:
            frame.save(buf, "JPEG", quality=self.jpeg_quality, optimize=False)
            ext = "jpg"
        return buf.getvalue(), ext, frame.width, frame.height

    def _decode_frame(self, img: Image.Image) -> tuple[Image.Image, bool]:
        orientation = _orientation(img)
        swap = orientation in (5, 6, 7, 8)
        width, height = img.size
        upright = (height, width) if swap else (width, height)
        target_up = self.target_size(*upright)
        target = (target_up[1], target_up[0]) if swap else target_up
        if img.format in ("JPEG", "MPO") and target != img.size:
            # DCT scaling by 1/2, 1/4 or 1/8, never below ``target``: decoding gets cheap.
            img.draft("RGB", target)
        max_pixels = Image.MAX_IMAGE_PIXELS
        if max_pixels is not None and img.size[0] * img.size[1] > max_pixels:
            raise _Unusable(REASON_BOMB, HINT_BOMB)
        img.load()
        bilevel = img.mode == "1"
        frame = _to_8bit(img)
        if frame.size != target:
            # After the draft the ratio is below 2: Hamming costs what BOX does here and is
            # sharper than bilinear; Lanczos doubles the time for no visible gain at 200 dpi.
            frame = frame.resize(target, Image.Resampling.HAMMING)
        frame = _to_srgb(frame, img.info.get("icc_profile"))
        if frame.mode == "CMYK":
            frame = frame.convert("RGB")
        method = _TRANSPOSE.get(orientation)
        if method is not None:
            frame = frame.transpose(method)
        frame.info = {}  # no EXIF (orientation applied), no ICC (converted to sRGB)
        return frame, bilevel and frame.mode == "L"

    def _pdf_entries(self, data: bytes, key: str) -> list[dict[str, Any]]:
        """One entry per page: "pdf" (merged as vector) or "image" (rasterised, see module doc)."""
        entries = _pdf_entries(data)
        document = None
        try:
            for entry in entries:
                if entry.pop("embedded"):
                    continue
                if document is None:
                    document = _open_pdfium(data)
                page = entry["page"]
                blob, width, height = self._raster_page(document, page)
                name = f"{key}-{page}.jpg"
                _atomic_write(self._entry_dir(key) / name, blob)
                entry.clear()
                entry.update(
                    kind="image",
                    file=name,
                    page=page,
                    width=width,
                    height=height,
                    bytes=len(blob),
                    note=NOTE_UNEMBEDDED_FONTS,
                )
        finally:
            if document is not None:
                document.close()
        return entries

    def _raster_page(self, document: Any, index: int) -> tuple[bytes, int, int]:
        """Render one page (after /Rotate) to fit the text block at ``dpi``; JPEG bytes."""
        try:
            page = document[index]
            try:
                width, height = page.get_size()  # points, rotation applied
                if width <= 0 or height <= 0:
                    raise _Unusable(REASON_CORRUPT)
                # pixels per point: the page fills the text block at exactly ``dpi``
                scale = min(self._box_px[0] / width, self._box_px[1] / height)
                image = page.render(scale=scale, may_draw_forms=True).to_pil()
            finally:
                page.close()
        except _Unusable:
            raise
        except Exception as e:  # pdfium raises PdfiumError (and others) on broken pages
            logger.debug("evidence PDF page could not be rasterised", exc_info=True)
            raise _Unusable(REASON_CORRUPT) from e
        image = image.convert("RGB") if image.mode != "RGB" else image
        if _is_grey(image):
            image = image.convert("L")  # statements are black on white: a third smaller
        blob, _ext, w, h = self._encode(image, False)
        return blob, w, h


# --------------------------------------------------------------------- helpers

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_HEIF_STATE: dict[str, bool] = {}
_SRGB_TRANSFORMS: dict[tuple[bytes, str], Any] = {}


#: JPEG segments kept when metadata is removed: JFIF (APP0), Adobe colour transform (APP14)
_JPEG_KEEP_APP = (0xE0, 0xEE)


#: start-of-frame markers (C4 DHT, C8 JPG and CC DAC are not frames)
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: frames passed through: baseline, extended sequential and progressive Huffman, 8-bit
_JPEG_SOF_PASSED = frozenset({0xC0, 0xC1, 0xC2})


def _strip_jpeg_metadata(data: bytes) -> bytes | None:
    """Return the JPEG without EXIF/XMP/IPTC/comment segments (lossless), or None if unparsable.

    Phone photos carry GPS positions in EXIF; they must not end up in the archive.
    """
    if data[:2] != b"\xff\xd8":
        return None
    out = [data[:2]]
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        end = pos + 2 + length
        if length < 2 or end > len(data):
            return None
        if marker == 0xDA:  # start of scan: the rest is image data, copied as is
            out.append(data[pos:])
            return b"".join(out)
        if marker in _JPEG_SOF and (marker not in _JPEG_SOF_PASSED or data[pos + 4] != 8):
            return None  # lossless, arithmetic-coded or 12-bit: decoded and encoded again
        is_app = 0xE0 <= marker <= 0xEF
        if marker != 0xFE and (not is_app or marker in _JPEG_KEEP_APP):
            out.append(data[pos:end])
        pos = end
    return None


def _stat(source: Path) -> os.stat_result:
    try:
        st = source.stat()
    except FileNotFoundError as e:
        raise _Unusable(REASON_MISSING, HINT_MISSING) from e
    except OSError as e:
        raise _Unusable(f"无法访问文件（{os_reason(e)}）", HINT_MISSING) from e
    if source.is_dir():
        raise _Unusable(REASON_DIRECTORY, HINT_MISSING)
    if st.st_size == 0:
        raise _Unusable(REASON_EMPTY)
    return st


def _read(source: Path) -> bytes:
    try:
        data = source.read_bytes()
    except FileNotFoundError as e:
        raise _Unusable(REASON_MISSING, HINT_MISSING) from e
    except PermissionError as e:
        raise _Unusable(
            "没有读取该文件的权限", "请检查文件权限，或把文件复制到户文件夹中。"
        ) from e
    except OSError as e:
        raise _Unusable(f"读取文件出错（{os_reason(e)}）") from e
    if not data:
        raise _Unusable(REASON_EMPTY)
    return data


def _atomic_write(path: Path, data: bytes) -> None:
    """Write a cache file atomically; a cache entry lost to a power cut is only made again."""
    from ..archive.outdir import atomic_file

    with atomic_file(path, durable=False) as handle:
        handle.write(data)


def _is_heif(data: bytes) -> bool:
    return data[4:8] == b"ftyp" and data[8:12] in (
        b"heic",
        b"heix",
        b"hevc",
        b"hevx",
        b"heim",
        b"heis",
        b"mif1",
        b"msf1",
        b"avif",
    )


def _register_heif() -> bool:
    """Register pillow-heif's opener once if it is installed; return whether it is."""
    if "ok" not in _HEIF_STATE:
        try:
            import pillow_heif  # type: ignore[import-not-found,unused-ignore]

            pillow_heif.register_heif_opener()
            _HEIF_STATE["ok"] = True
        except Exception:  # noqa: BLE001 - missing or broken optional decoder
            _HEIF_STATE["ok"] = False
    return _HEIF_STATE["ok"]


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - broken EXIF must not lose the picture
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _to_8bit(img: Image.Image) -> Image.Image:
    """Return ``img`` as 8-bit L, RGB or CMYK, transparency flattened onto white."""
    mode = img.mode
    if mode in ("L", "RGB", "CMYK"):
        return img
    if mode == "1":
        return img.convert("L")
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _wide_to_l(img)
    if mode == "P":
        if (
            "transparency" in img.info
            or img.palette is not None
            and img.palette.mode == "RGBA"
        ):
            return _flatten(img.convert("RGBA"))
        return img.convert("RGB")
    if mode in ("LA", "La"):
        return _flatten(img).convert("L")
    if mode in ("RGBA", "RGBa", "PA"):
        return _flatten(img)
    return img.convert("RGB")


def _flatten(img: Image.Image) -> Image.Image:
    rgba = img if img.mode == "RGBA" else img.convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _wide_to_l(img: Image.Image) -> Image.Image:
    """Map 16/32-bit integer or float greyscale to 8-bit L."""
    wide = img if img.mode in ("I", "F") else img.convert("I")
    extrema = wide.getextrema()
    low, high = float(extrema[0]), float(extrema[1])  # type: ignore[arg-type]
    if img.mode == "F":
        span = (high - low) or 1.0
        return wide.point(lambda v: (v - low) * 255.0 / span).convert("L")
    if high <= 255 and low >= 0:
        return wide.convert("L")
    # Full 16-bit range, as scanners write it: keep the top byte.
    return wide.point(lambda v: v / 256).convert("L")


def _to_srgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    """Convert to sRGB with the embedded profile; without one, return ``img`` unchanged.

    PDF viewers ignore ICC profiles inside an embedded JPEG (reportlab declares DeviceRGB),
    so keeping the profile would not help: converting once here is what makes Display P3
    phone photos and CMYK scans print with the right colours.  Runs after the downscale, on
    ≈ 1 Mpx, and the transform per profile is cached.
    """
    if not icc or img.mode not in ("RGB", "CMYK", "L"):
        return img
    try:
        from PIL import ImageCms
    except (
        ImportError
    ):  # Pillow built without littlecms: fall back to the plain conversion
        return img
    try:
        out_mode = "L" if img.mode == "L" else "RGB"
        cache_key = (hashlib.sha256(icc).digest(), img.mode)
        transform = _SRGB_TRANSFORMS.get(cache_key)
        if transform is None:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            if img.mode == "L":
                # Grey profiles: converting to an sRGB-like grey needs a grey output
                # profile littlecms does not ship; the plain values are close enough.
                return img
            description = ImageCms.getProfileDescription(profile) or ""
            if "sRGB" in description and img.mode == "RGB":
                _SRGB_TRANSFORMS[cache_key] = False
                return img
            transform = ImageCms.buildTransform(
                profile,
                ImageCms.createProfile("sRGB"),
                img.mode,
                out_mode,
                renderingIntent=ImageCms.Intent.PERCEPTUAL,
            )
            _SRGB_TRANSFORMS[cache_key] = transform
        if transform is False:
            return img
        converted = ImageCms.applyTransform(img, transform)
        return converted if converted is not None else img
    except Exception:  # a broken profile must not lose the picture
        logger.debug("ICC conversion failed; using plain conversion", exc_info=True)
        return img


def _open_pdfium(data: bytes) -> Any:
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(data)
    except Exception as e:  # pypdf read it, pdfium does not: any error means unusable
        logger.debug("pdfium could not open an evidence PDF", exc_info=True)
        raise _Unusable(REASON_CORRUPT) from e


def _is_grey(image: Image.Image) -> bool:
    from PIL import ImageChops

    r, g, b = image.split()
    return ImageChops.difference(r, g).getbbox() is None and ImageChops.difference(g, b).getbbox() is None


_FONT_FILES = ("/FontFile", "/FontFile2", "/FontFile3")


def fonts_embedded(page: Any) -> bool:
    """True if every font a ``pypdf`` page draws with carries its embedded program.

    Looks at the page's resources and, recursively, at those of Form XObjects, tiling
    patterns, soft-mask groups, Type 3 glyph procedures and annotation appearances (pypdf
    merges annotations too).  A font without a descriptor (one of the standard 14) or whose
    descriptor has no ``/FontFile``, ``/FontFile2`` or ``/FontFile3`` is not embedded.  A
    structure that cannot be read counts as not embedded: rasterising is the safe side.
    """
    from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject

    seen: set[int] = set()

    def once(ref: Any) -> bool:
        """True the first time an indirect object is met (cycles, shared resources)."""
        if isinstance(ref, IndirectObject):
            if ref.idnum in seen:
                return False
            seen.add(ref.idnum)
        return True

    def font_ok(ref: Any) -> bool:
        if not once(ref):
            return True
        font = ref.get_object()
        if not isinstance(font, DictionaryObject):
            return False
        subtype = font.get("/Subtype")
        if subtype == "/Type3":  # glyphs are content streams; their resources may hold fonts
            return resources_ok(font.get("/Resources"))
        if subtype == "/Type0":
            descendants = font.get("/DescendantFonts")
            descendants = descendants.get_object() if descendants is not None else None
            if not isinstance(descendants, ArrayObject) or not descendants:
                return False
            font = descendants[0].get_object()
        descriptor = font.get("/FontDescriptor")
        if descriptor is None:
            return False
        descriptor = descriptor.get_object()
        return isinstance(descriptor, DictionaryObject) and any(k in descriptor for k in _FONT_FILES)

    def stream_ok(ref: Any) -> bool:
        if ref is None or not once(ref):
            return True
        obj = ref.get_object()
        if not isinstance(obj, DictionaryObject):
            return True
        return resources_ok(obj.get("/Resources"))

    def resources_ok(ref: Any) -> bool:
        if ref is None or not once(ref):
            return True
        res = ref.get_object()
        if not isinstance(res, DictionaryObject):
            return True
        fonts = res.get("/Font")
        if fonts is not None and not all(font_ok(f) for f in fonts.get_object().values()):
            return False
        for group in ("/XObject", "/Pattern"):
            objs = res.get(group)
            if objs is not None and not all(stream_ok(x) for x in objs.get_object().values()):
                return False
        states = res.get("/ExtGState")
        for state in (states.get_object().values() if states is not None else ()):
            state = state.get_object()
            mask = state.get("/SMask") if isinstance(state, DictionaryObject) else None
            mask = mask.get_object() if mask is not None else None
            if isinstance(mask, DictionaryObject) and not stream_ok(mask.get("/G")):
                return False
        return True

    def annotations_ok() -> bool:
        annots = page.get("/Annots")
        for annot in (annots.get_object() if annots is not None else ()):
            annot = annot.get_object()
            ap = annot.get("/AP") if isinstance(annot, DictionaryObject) else None
            ap = ap.get_object() if ap is not None else None
            if not isinstance(ap, DictionaryObject):
                continue
            for appearance in ap.values():
                appearance = appearance.get_object()
                # either a stream or a dictionary of states → streams
                if hasattr(appearance, "get_data") or not isinstance(appearance, DictionaryObject):
                    streams = [appearance]
                else:
                    streams = list(appearance.values())
                if not all(stream_ok(a) for a in streams):
                    return False
        return True

    try:
        return resources_ok(page.get("/Resources")) and annotations_ok()
    except Exception:  # a broken structure: rasterise rather than trust it
        logger.debug("font check of an evidence PDF page failed", exc_info=True)
        return False


def _pdf_entries(data: bytes) -> list[dict[str, Any]]:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                decrypted = reader.decrypt("")
            except DependencyError as e:
                raise _Unusable(
                    "PDF 已加密，且缺少解密组件",
                    "请安装 cryptography（pip install cryptography）。",
                ) from e
            if not decrypted:
                raise _Unusable(REASON_ENCRYPTED, HINT_ENCRYPTED)
        entries = []
        for index, page in enumerate(reader.pages):
            box = page.mediabox
            width, height = abs(float(box.width)), abs(float(box.height))
            if width <= 0 or height <= 0:
                raise _Unusable(REASON_CORRUPT)
            rotation = page.rotation % 360 if page.rotation % 90 == 0 else 0
            if rotation in (90, 270):
                width, height = height, width
            entries.append(
                {
                    "kind": "pdf",
                    "page": index,
                    "width": width,
                    "height": height,
                    "rotation": rotation,
                    "embedded": fonts_embedded(page),
                }
            )
    except _Unusable:
        raise
    except Exception as e:  # pypdf raises many types on broken files
        logger.debug("evidence PDF failed", exc_info=True)
        raise _Unusable(REASON_CORRUPT) from e
    if not entries:
        raise _Unusable(REASON_PDF_EMPTY)
    return entries
