"""Image helpers of the evidence cache: JPEG metadata stripping, orientation, bit depth,
transparency, colour profiles, HEIF support and the grey check of rasterised pages.

Output carries no metadata: EXIF is dropped (the orientation is already applied, and phone
photos carry GPS positions that must not travel into the archive), and an embedded ICC
profile is converted to sRGB once instead of kept.
"""

from __future__ import annotations

import hashlib
import io
import logging
from typing import Any

from PIL import Image

from .evidenceassets import REASON_CORRUPT, _Unusable

# --------------------------------------------------------------------- helpers

logger = logging.getLogger(__name__)


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


#: more filters on one stream than any real file uses (a chain of 1,000 is an attack)
