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
the whole file, so a lookup first tries the stat index: if path, size,
mtime_ns and ctime_ns are unchanged the stored key is used without reading the file.  ctime
cannot be set by ordinary tools, so an edited file of the same size and a restored mtime is
still noticed.  Parallel workers may compute the same entry at the same time: both write
identical bytes and the last ``os.replace`` wins, so races are harmless.  Placeholders are
never cached (a missing or locked file may be fixed before the next run).

Output carries no metadata: EXIF is dropped and an embedded ICC profile is converted to
sRGB (``evidenceimage``), because the PDF declares DeviceRGB and viewers ignore a profile
inside the JPEG stream.

The parts: ``evidenceassets`` (the asset kinds, reasons and warnings), ``evidenceimage``
(image helpers), ``evidencepdf`` (evidence PDFs); this module is the cache.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import stat
import warnings
from pathlib import Path
from typing import Any

import PIL
from PIL import Image, ImageFile

from ..errors import os_reason
from .evidenceassets import (  # noqa: F401 - imported from here
    CACHE_VERSION,
    HEIF_SUFFIXES,
    HINT_BOMB,
    HINT_ENCRYPTED,
    HINT_HEIF,
    HINT_MISSING,
    HINT_NOT_REGULAR,
    HINT_UNSUPPORTED,
    MM_PER_INCH,
    NOTE_UNEMBEDDED_FONTS,
    PIL_FORMATS,
    REASON_BOMB,
    REASON_CORRUPT,
    REASON_DIRECTORY,
    REASON_EMPTY,
    REASON_ENCRYPTED,
    REASON_HEIF,
    REASON_MISSING,
    REASON_NOT_REGULAR,
    REASON_TRUNCATED,
    SUPPORTED_SUFFIXES,
    Asset,
    ImageAsset,
    PdfPageAsset,
    Placeholder,
    _Unusable,
    asset_warning,
    raster_warning,
    removed_warning,
)
from .evidenceimage import (
    _HEIF_STATE,
    _TRANSPOSE,
    _is_grey,
    _is_heif,
    _open_pdfium,
    _orientation,
    _register_heif,
    _strip_jpeg_metadata,
    _to_8bit,
    _to_srgb,
)
from .evidencepdf import _pdf_entries, fonts_embedded, open_evidence_pdf  # noqa: F401 - imported from here
from .pdfiumlock import PDFIUM

logger = logging.getLogger(__name__)




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
        hasher.update(data)  # not concatenated: that would copy a whole photo once more
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
                            removed=tuple(item.get("removed", ())),
                        )
                    )
                else:
                    clean = folder / item["file"]
                    if clean.stat().st_size != item["bytes"]:
                        return None
                    result.append(
                        PdfPageAsset(
                            source,
                            item["page"],
                            item["width"],
                            item["height"],
                            item["rotation"],
                            path=clean,
                            removed=tuple(item.get("removed", ())),
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
                limit = Image.MAX_IMAGE_PIXELS
                # Pillow refuses more than twice the limit from the header alone, before a
                # JPEG could be drafted down to 1/8 (a 196 MP panorama decodes to 3 MP):
                # the decoded size is checked instead (_decode_frame), against ``limit``.
                Image.MAX_IMAGE_PIXELS = None
                try:
                    img = Image.open(io.BytesIO(data), formats=formats)
                finally:
                    Image.MAX_IMAGE_PIXELS = limit
                with img:
                    # (a JPEG that can pass through never gets here: see _passed_through)
                    n_frames = (
                        getattr(img, "n_frames", 1) if img.format == "TIFF" else 1
                    )
                    frames = []
                    for index in range(n_frames):
                        if index:
                            img.seek(index)
                        frames.append(self._encode(*self._decode_frame(img, limit)))
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

        Nothing is cached for it: reading it and removing its metadata costs less than the
        three cache files would (and a village build creates far fewer files).
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
        again (and take time). It is not decoded at all: its segments are checked instead
        (baseline or progressive Huffman coding, which every PDF reader decodes, and an end-of-
        image marker after the scan data, which a cut-off copy lacks). Decoding it even at 1/8
        scale only to look for damage was a large share of a village build's rendering.
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
        end = _end_of_image(stripped, scan)
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

    def _decode_frame(self, img: Image.Image, max_pixels: int | None) -> tuple[Image.Image, bool]:
        orientation = _orientation(img)
        target = self._oriented_target(img.size, orientation)
        if img.format in ("JPEG", "MPO") and target != img.size:
            # DCT scaling by 1/2, 1/4 or 1/8, never below ``target``: decoding gets cheap.
            img.draft("RGB", target)
        if max_pixels is not None and img.size[0] * img.size[1] > max_pixels:
            raise _Unusable(REASON_BOMB, HINT_BOMB)
        img.load()
        if orientation != 1 and _orientation(img) == 1:
            # This Pillow applied the orientation itself while loading (TIFF since Pillow 13)
            # and removed the tag: applying it again would rotate or mirror the scan twice.
            orientation = 1
            target = self._oriented_target(img.size, 1)
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

    def _oriented_target(self, size: tuple[int, int], orientation: int) -> tuple[int, int]:
        """The stored-axes size a ``size`` image is reduced to, given its EXIF orientation."""
        swap = orientation in (5, 6, 7, 8)
        width, height = size
        upright = (height, width) if swap else (width, height)
        target_up = self.target_size(*upright)
        return (target_up[1], target_up[0]) if swap else target_up

    def _pdf_entries(self, data: bytes, key: str) -> list[dict[str, Any]]:
        """One entry per page: "pdf" (merged as vector) or "image" (rasterised, see module doc).

        Both come from the sanitised copy (``pdfclean``): page content only, nothing that acts.
        """
        from . import pdfclean

        try:
            data, removed = pdfclean.sanitise(data)
        except pdfclean.Unreadable as e:
            if e.encrypted:
                raise _Unusable(REASON_ENCRYPTED, HINT_ENCRYPTED) from e
            logger.debug("evidence PDF could not be sanitised", exc_info=True)
            raise _Unusable(REASON_CORRUPT) from e
        entries = _pdf_entries(data)
        clean = f"{key}.pdf"
        _atomic_write(self._entry_dir(key) / clean, data)
        for entry in entries:
            entry.update(file=clean, bytes=len(data), removed=list(removed))
        document = None
        with PDFIUM:  # from opening to closing: pdfium is not thread-safe (the web app)
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
                        removed=list(removed),
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


def _end_of_image(data: bytes, start: int) -> int:
    """Index of the first FF D9 (end of image) at or after ``start``, or -1.

    ``data.find(b"\\xff\\xd9", start)`` gives the same index, at four times the cost: in scan
    data FF is common (every FF is stuffed as FF 00) and D9 rare, so D9 is looked for with a
    one-byte search and its preceding byte checked.
    """
    find = data.find
    at = find(b"\xd9", start + 1)
    while at >= 0:
        if data[at - 1] == 0xFF:
            return at - 1
        at = find(b"\xd9", at + 1)
    return -1


def _stat(source: Path) -> os.stat_result:
    try:
        st = source.stat()
    except FileNotFoundError as e:
        raise _Unusable(REASON_MISSING, HINT_MISSING) from e
    except OSError as e:
        raise _Unusable(f"无法访问文件（{os_reason(e)}）", HINT_MISSING) from e
    if stat.S_ISDIR(st.st_mode):
        raise _Unusable(REASON_DIRECTORY, HINT_MISSING)
    if not stat.S_ISREG(st.st_mode):
        raise _Unusable(REASON_NOT_REGULAR, HINT_NOT_REGULAR)
    if st.st_size == 0:
        raise _Unusable(REASON_EMPTY)
    return st


def _read(source: Path) -> bytes:
    from ..archive.hashing import open_regular

    try:
        with open_regular(source) as handle:  # never blocks (a FIFO), regular files only
            data = handle.read()
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


