"""Evidence normalisation: orientation, downscale, colour modes, PDFs, bad files, cache."""

from __future__ import annotations

import importlib.util
import io
import random
import re
from pathlib import Path

import pytest
from PIL import Image, ImageCms, ImageOps, ImageStat
from pypdf import PdfReader, PdfWriter
from reportlab.lib.pagesizes import A4, landscape
from reportlab.pdfgen import canvas

from archive_builder.render import evidence
from archive_builder.render.evidence import (
    EvidenceCache,
    ImageAsset,
    PdfPageAsset,
    Placeholder,
    asset_warning,
)

RED = (255, 0, 0)


@pytest.fixture()
def cache(tmp_path: Path) -> EvidenceCache:
    return EvidenceCache(tmp_path / "cache")


def only_image(assets: list[evidence.Asset]) -> ImageAsset:
    assert len(assets) == 1
    asset = assets[0]
    assert isinstance(asset, ImageAsset), asset
    return asset


def only_placeholder(assets: list[evidence.Asset]) -> Placeholder:
    assert len(assets) == 1
    asset = assets[0]
    assert isinstance(asset, Placeholder), asset
    return asset


def mean_colour(img: Image.Image, box: tuple[int, int, int, int]) -> tuple[float, ...]:
    return tuple(ImageStat.Stat(img.crop(box).convert("RGB")).mean)


def is_red(colour: tuple[float, ...]) -> bool:
    return colour[0] > 200 and colour[1] < 60 and colour[2] < 60


def marked_photo(path: Path, orientation: int) -> None:
    """Write a 300×200 JPEG with a red block in the stored top-left corner."""
    img = Image.new("RGB", (300, 200), (255, 255, 255))
    img.paste(RED, (0, 0, 60, 60))
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(path, "JPEG", quality=95, exif=exif.tobytes())


@pytest.mark.parametrize(
    ("orientation", "corner"),
    [(6, "top-right"), (8, "bottom-left"), (3, "bottom-right"), (1, "top-left")],
)
def test_exif_orientation_makes_the_picture_upright(
    tmp_path: Path, cache: EvidenceCache, orientation: int, corner: str
) -> None:
    src = tmp_path / "photo.jpg"
    marked_photo(src, orientation)
    asset = only_image(cache.assets(src, display_path="photos/photo.jpg"))
    expected_size = (200, 300) if orientation in (6, 8) else (300, 200)
    assert (asset.width_px, asset.height_px) == expected_size
    with Image.open(io.BytesIO(asset.image_bytes())) as out:
        assert out.size == expected_size
        # The orientation is applied once: no orientation tag may survive.
        assert out.getexif().get(0x0112) is None
        w, h = out.size
        boxes = {
            "top-left": (0, 0, 30, 30),
            "top-right": (w - 30, 0, w, 30),
            "bottom-left": (0, h - 30, 30, h),
            "bottom-right": (w - 30, h - 30, w, h),
        }
        for name, box in boxes.items():
            assert is_red(mean_colour(out, box)) == (name == corner), name
        with Image.open(src) as original:
            reference = ImageOps.exif_transpose(original)
        assert mean_colour(reference, boxes[corner]) == pytest.approx(
            mean_colour(out, boxes[corner]), abs=20
        )


def test_camera_photo_is_reduced_to_print_resolution(
    tmp_path: Path, cache: EvidenceCache
) -> None:
    src = tmp_path / "camera.jpg"
    Image.linear_gradient("L").resize((4000, 3000)).convert("RGB").save(src, quality=80)
    asset = only_image(cache.assets(src, display_path="camera.jpg"))
    box_w_in, box_h_in = 156 / 25.4, 225 / 25.4
    # Fitted into the text block, the picture is width-limited.
    placed_w_in = min(box_w_in, box_h_in * 4000 / 3000)
    dpi = asset.width_px / placed_w_in
    assert 195 <= dpi <= 200
    assert asset.width_px / asset.height_px == pytest.approx(4 / 3, rel=0.01)
    assert asset.path.stat().st_size < src.stat().st_size


def test_rotated_camera_photo_is_drafted_along_the_right_axes(
    tmp_path: Path, cache: EvidenceCache
) -> None:
    src = tmp_path / "portrait.jpg"
    img = Image.linear_gradient("L").resize((4000, 3000)).convert("RGB")
    img.paste(RED, (0, 0, 400, 400))
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(src, quality=80, exif=exif.tobytes())
    asset = only_image(cache.assets(src, display_path="portrait.jpg"))
    # Upright 3000×4000 fits the 156×225 mm block by its width at 200 dpi.
    factor = 156 / 25.4 * 200 / 3000
    assert (asset.width_px, asset.height_px) == (int(3000 * factor), int(4000 * factor))
    with Image.open(io.BytesIO(asset.image_bytes())) as out:
        assert is_red(mean_colour(out, (out.width - 60, 0, out.width - 10, 50)))


def test_truncated_images_setting_is_not_silently_accepted(
    tmp_path: Path, cache: EvidenceCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "p.png"
    Image.new("RGB", (10, 10)).save(src)
    monkeypatch.setattr(evidence.ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError):
        cache.assets(src, display_path="p.png")


def test_small_image_is_never_upscaled(tmp_path: Path, cache: EvidenceCache) -> None:
    src = tmp_path / "small.png"
    Image.new("RGB", (120, 80), (10, 20, 30)).save(src)
    asset = only_image(cache.assets(src, display_path="small.png"))
    assert (asset.width_px, asset.height_px) == (120, 80)


def test_portrait_scan_is_limited_by_box_height(cache: EvidenceCache) -> None:
    # A4-shaped page at 600 dpi: height-limited by the 225 mm block at 200 dpi.
    width, height = cache.target_size(4961, 7016)
    assert height <= 225 / 25.4 * 200
    assert width <= 156 / 25.4 * 200


def test_png_alpha_is_flattened_onto_white(
    tmp_path: Path, cache: EvidenceCache
) -> None:
    src = tmp_path / "sign.png"
    img = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    img.paste((255, 0, 0, 255), (50, 50, 150, 150))
    img.save(src)
    asset = only_image(cache.assets(src, display_path="sign.png"))
    assert asset.path.suffix == ".jpg"
    with Image.open(io.BytesIO(asset.image_bytes())) as out:
        assert out.format == "JPEG"
        assert out.mode == "RGB"
        assert min(mean_colour(out, (0, 0, 40, 40))) > 245
        assert is_red(mean_colour(out, (70, 70, 130, 130)))


def test_palette_gif_with_transparency(tmp_path: Path, cache: EvidenceCache) -> None:
    src = tmp_path / "stamp.gif"
    img = Image.new("P", (50, 50), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.paste(1, (10, 10, 40, 40))
    img.save(src, transparency=0)
    with Image.open(
        asset_path := only_image(cache.assets(src, display_path="s.gif")).path
    ) as out:
        assert out.mode == "RGB", asset_path
        assert min(mean_colour(out, (0, 0, 8, 8))) > 245
        assert is_red(mean_colour(out, (15, 15, 35, 35)))


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path, cache: EvidenceCache) -> None:
    src = tmp_path / "cmyk.jpg"
    # Pillow writes CMYK JPEGs with Adobe's inverted polarity, as Photoshop does.
    Image.new("CMYK", (120, 90), (0, 255, 255, 0)).save(src, quality=95)
    asset = only_image(cache.assets(src, display_path="cmyk.jpg"))
    with Image.open(io.BytesIO(asset.image_bytes())) as out:
        assert out.mode == "RGB"
        assert is_red(mean_colour(out, (10, 10, 110, 80)))


def test_16_bit_png_keeps_its_tones(tmp_path: Path, cache: EvidenceCache) -> None:
    src = tmp_path / "scan16.png"
    img = Image.new("I;16", (256, 16))
    img.putdata([x * 257 for _ in range(16) for x in range(256)])
    img.save(src)
    asset = only_image(cache.assets(src, display_path="scan16.png"))
    with Image.open(io.BytesIO(asset.image_bytes())) as out:
        assert out.mode == "L"
        grey = out.convert("L")
        assert grey.getpixel((10, 8)) == pytest.approx(10, abs=6)
        assert grey.getpixel((128, 8)) == pytest.approx(128, abs=6)
        assert grey.getpixel((250, 8)) == pytest.approx(250, abs=6)


def test_bilevel_scan_stays_png(tmp_path: Path, cache: EvidenceCache) -> None:
    src = tmp_path / "fax.tif"
    img = Image.new("1", (200, 100), 1)
    img.paste(0, (20, 20, 80, 80))
    img.save(src, compression="group4")
    asset = only_image(cache.assets(src, display_path="fax.tif"))
    assert asset.path.suffix == ".png"
    with Image.open(io.BytesIO(asset.image_bytes())) as out:
        assert out.mode == "L"
        assert out.getpixel((50, 50)) == 0
        assert out.getpixel((150, 50)) == 255


def test_multi_page_tiff_gives_one_asset_per_frame(
    tmp_path: Path, cache: EvidenceCache
) -> None:
    src = tmp_path / "pages.tiff"
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    frames = [Image.new("RGB", (100, 140), c) for c in colours]
    frames[0].save(src, save_all=True, append_images=frames[1:])
    assets = cache.assets(src, display_path="pages.tiff")
    assert [a.page for a in assets if isinstance(a, ImageAsset)] == [0, 1, 2]
    for asset, colour in zip(assets, colours, strict=True):
        assert isinstance(asset, ImageAsset)
        assert asset.source == src
        with Image.open(io.BytesIO(asset.image_bytes())) as out:
            assert mean_colour(out, (10, 10, 90, 130)) == pytest.approx(colour, abs=10)


def embedded_font() -> str:
    """Register reportlab's bundled Vera (TrueType, embedded when used); return its name."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if "EvidenceVera" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("EvidenceVera", "Vera.ttf"))
    return "EvidenceVera"


def make_pdf(path: Path) -> None:
    """Three pages (A4, landscape, A4 with /Rotate 90) whose only font is embedded."""
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4, initialFontName=embedded_font())
    for size in (A4, landscape(A4), A4):
        c.setPageSize(size)
        c.drawString(72, 72, "evidence")
        c.showPage()
    c.save()
    reader = PdfReader(io.BytesIO(buf.getvalue()))
    writer = PdfWriter()
    for page in reader.pages:
        writer.add_page(page)
    writer.pages[2].rotate(90)
    with path.open("wb") as f:
        writer.write(f)


def test_pdf_pages_become_page_assets(tmp_path: Path, cache: EvidenceCache) -> None:
    src = tmp_path / "bank.pdf"
    make_pdf(src)
    assets = cache.assets(src, display_path="bank.pdf")
    assert all(isinstance(a, PdfPageAsset) for a in assets)
    a4w, a4h = A4
    assert [(a.page, a.rotation) for a in assets] == [(0, 0), (1, 0), (2, 90)]  # type: ignore[union-attr]
    sizes = [(a.width_pt, a.height_pt) for a in assets]  # type: ignore[union-attr]
    assert sizes == [
        pytest.approx((a4w, a4h)),
        pytest.approx((a4h, a4w)),
        pytest.approx((a4h, a4w)),  # /Rotate 90 shows the portrait page landscape
    ]
    # Cached manifests must give the same answer.
    assert EvidenceCache(cache.cache_dir).assets(src, display_path="bank.pdf") == assets


def test_encrypted_pdf_is_a_placeholder(tmp_path: Path, cache: EvidenceCache) -> None:
    src = tmp_path / "locked.pdf"
    writer = PdfWriter()
    writer.add_blank_page(200, 300)
    writer.encrypt("secret")
    with src.open("wb") as f:
        writer.write(f)
    ph = only_placeholder(cache.assets(src, display_path="docs/locked.pdf"))
    assert ph.reason == "PDF 已加密，需要密码才能打开"
    assert ph.display_path == "docs/locked.pdf"
    assert "未加密" in ph.hint


def test_owner_password_only_pdf_opens(tmp_path: Path, cache: EvidenceCache) -> None:
    src = tmp_path / "statement.pdf"
    writer = PdfWriter()
    writer.add_blank_page(200, 300)
    writer.encrypt(user_password="", owner_password="owner")
    with src.open("wb") as f:
        writer.write(f)
    assets = cache.assets(src, display_path="statement.pdf")
    assert assets == [PdfPageAsset(src, 0, 200.0, 300.0, 0)]
    assert len(evidence.open_evidence_pdf(src).pages) == 1


def write_truncated_jpeg(path: Path) -> None:
    buf = io.BytesIO()
    Image.effect_noise((400, 300), 50).convert("RGB").save(buf, "JPEG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("missing.jpg", None, "文件不存在"),
        ("folder.jpg", lambda p: p.mkdir(), "该路径是文件夹，不是文件"),
        ("empty.png", lambda p: p.write_bytes(b""), "文件为空（0 字节）"),
        (
            "garbage.jpg",
            lambda p: p.write_bytes(b"not an image" * 100),
            "文件已损坏或格式无法识别",
        ),
        (
            "broken.pdf",
            lambda p: p.write_bytes(b"%PDF-1.7\n garbage"),
            "文件已损坏或格式无法识别",
        ),
        (
            "cut.jpg",
            write_truncated_jpeg,
            "图片数据不完整（文件被截断，可能是拷贝或上传中断）",
        ),
        ("notes.txt", lambda p: p.write_text("hello"), "不支持的文件类型：.txt"),
        (
            "form.docx",
            lambda p: p.write_bytes(b"PK\x03\x04"),
            "不支持的文件类型：.docx",
        ),
        ("README", lambda p: p.write_text("x"), "不支持的文件类型：（无扩展名）"),
    ],
)
def test_bad_files_become_placeholders(
    tmp_path: Path, cache: EvidenceCache, name: str, make: object, reason: str
) -> None:
    src = tmp_path / name
    if callable(make):
        make(src)
    ph = only_placeholder(cache.assets(src, display_path=f"photos/{name}"))
    assert ph.reason == reason
    assert ph.source == src
    assert ph.display_path == f"photos/{name}"


def test_placeholders_are_not_cached(tmp_path: Path, cache: EvidenceCache) -> None:
    src = tmp_path / "late.png"
    assert isinstance(cache.assets(src, display_path="late.png")[0], Placeholder)
    Image.new("RGB", (10, 10)).save(src)
    assert isinstance(cache.assets(src, display_path="late.png")[0], ImageAsset)


# 10 000 px is beyond 2x the limit (error); 1 600 px is between 1x and 2x (warning).
@pytest.mark.parametrize("size", [(100, 100), (40, 40)])
def test_decompression_bomb_is_a_placeholder(
    tmp_path: Path,
    cache: EvidenceCache,
    monkeypatch: pytest.MonkeyPatch,
    size: tuple[int, int],
) -> None:
    src = tmp_path / "bomb.png"
    Image.new("L", size).save(src)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    ph = only_placeholder(cache.assets(src, display_path="bomb.png"))
    assert ph.reason == "图片像素超过安全上限（可能是解压炸弹）"


def test_big_jpeg_is_judged_by_its_drafted_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 2400×1600 px decodes at 1/8 scale (300×200 px) for a 300 px box: within the limit.
    src = tmp_path / "big.jpg"
    Image.new("RGB", (2400, 1600), (0, 0, 255)).save(src)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2400 * 1600 * 0.8)
    small = EvidenceCache(tmp_path / "cache", dpi=50, max_box_mm=(152.4, 152.4))
    asset = only_image(small.assets(src, display_path="big.jpg"))
    assert (asset.width_px, asset.height_px) == (300, 200)


@pytest.mark.skipif(
    importlib.util.find_spec("pillow_heif") is not None,
    reason="pillow-heif is installed",
)
def test_heic_without_decoder_names_the_package(
    tmp_path: Path, cache: EvidenceCache
) -> None:
    src = tmp_path / "IMG_0001.HEIC"
    src.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64)
    ph = only_placeholder(cache.assets(src, display_path="IMG_0001.HEIC"))
    assert "pillow-heif" in ph.reason
    assert "pip install pillow-heif" in ph.hint


def test_cache_hit_does_not_decode(
    tmp_path: Path, cache: EvidenceCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "photo.jpg"
    marked_photo(src, 6)
    first = cache.assets(src, display_path="photo.jpg")

    def no_decoding(*args: object, **kwargs: object) -> Image.Image:
        raise AssertionError("a cache hit must not decode the image")

    monkeypatch.setattr(Image, "open", no_decoding)
    assert cache.assets(src, display_path="photo.jpg") == first
    # A fresh process (no in-memory memo) finds it through the stat index on disk.
    assert EvidenceCache(cache.cache_dir).assets(src, display_path="photo.jpg") == first
    # Same bytes under another name: found by content hash.
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(src.read_bytes())
    copied = EvidenceCache(cache.cache_dir).assets(copy, display_path="copy.jpg")
    assert [a.path for a in copied] == [a.path for a in first]  # type: ignore[union-attr]
    assert [a.source for a in copied] == [copy]


def test_changed_file_is_normalised_again(tmp_path: Path, cache: EvidenceCache) -> None:
    src = tmp_path / "photo.png"
    Image.new("RGB", (40, 30), RED).save(src)
    first = only_image(cache.assets(src, display_path="photo.png"))
    Image.new("RGB", (30, 40), (0, 0, 255)).save(src)
    second = only_image(cache.assets(src, display_path="photo.png"))
    assert second.path != first.path
    assert (second.width_px, second.height_px) == (30, 40)


def test_deleted_cache_file_is_rebuilt(tmp_path: Path, cache: EvidenceCache) -> None:
    src = tmp_path / "photo.png"
    Image.new("RGB", (40, 30), RED).save(src)
    first = only_image(cache.assets(src, display_path="photo.png"))
    first.path.unlink()
    again = only_image(cache.assets(src, display_path="photo.png"))
    assert again.path == first.path and again.path.exists()


def test_output_bytes_are_deterministic(tmp_path: Path) -> None:
    src = tmp_path / "photo.jpg"
    Image.effect_noise((1600, 1200), 40).convert("RGB").save(src)
    a = only_image(EvidenceCache(tmp_path / "one").assets(src, display_path="p.jpg"))
    b = only_image(EvidenceCache(tmp_path / "two").assets(src, display_path="p.jpg"))
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.path.name == b.path.name


def test_parameters_are_part_of_the_key(tmp_path: Path) -> None:
    src = tmp_path / "photo.jpg"
    Image.new("RGB", (3000, 2000)).save(src)
    low = only_image(
        EvidenceCache(tmp_path / "c", dpi=100).assets(src, display_path="p")
    )
    high = only_image(
        EvidenceCache(tmp_path / "c", dpi=200).assets(src, display_path="p")
    )
    assert low.path != high.path
    assert low.width_px < high.width_px


def test_no_temporary_files_left(tmp_path: Path, cache: EvidenceCache) -> None:
    src = tmp_path / "photo.png"
    Image.new("RGB", (40, 30)).save(src)
    cache.assets(src, display_path="photo.png")
    assert not [p for p in cache.cache_dir.rglob(".tmp-*")]


def test_asset_warning_text() -> None:
    line = asset_warning("411621000001", "photos/a.jpg", "文件已损坏或格式无法识别")
    assert line == (
        "户 411621000001 的佐证材料 photos/a.jpg 无法读取（文件已损坏或格式无法识别），"
        "已用占位页代替；请重新扫描或替换该文件。"
    )
    ph = Placeholder(Path("a.heic"), "a.heic", evidence.REASON_HEIF, evidence.HINT_HEIF)
    assert asset_warning("1", ph.display_path, ph.reason, hint=ph.hint).endswith(
        "pip install pillow-heif）后重新生成，或把照片另存为 JPEG。"
    )


def test_embedded_profile_is_not_carried_over(
    tmp_path: Path, cache: EvidenceCache
) -> None:
    src = tmp_path / "srgb.jpg"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.new("RGB", (64, 48), RED).save(src, icc_profile=icc)
    asset = only_image(cache.assets(src, display_path="srgb.jpg"))
    with Image.open(io.BytesIO(asset.image_bytes())) as out:
        assert out.info.get("icc_profile") is None
        assert is_red(mean_colour(out, (8, 8, 56, 40)))


@pytest.mark.parametrize("seed", range(12))
def test_damaged_files_never_raise(tmp_path: Path, seed: int) -> None:
    buf = io.BytesIO()
    Image.effect_noise((160, 120), 40).convert("RGB").save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    rng = random.Random(seed)
    for _ in range(8):
        data[rng.randrange(len(data))] = rng.randrange(256)
    src = tmp_path / "damaged.jpg"
    src.write_bytes(bytes(data))
    (asset,) = EvidenceCache(tmp_path / "c").assets(src, display_path="damaged.jpg")
    if isinstance(asset, Placeholder):  # said in Chinese, with the file and a fix
        assert asset.display_path == "damaged.jpg"
        assert re.search(r"[\u4e00-\u9fff]", asset.reason) and asset.hint
    else:  # what is embedded is a JPEG or PNG of the size the layout is told
        # (a pass-through JPEG is not decoded, so damage inside its entropy-coded data is
        # not seen here: its header is what the layout relies on)
        assert isinstance(asset, ImageAsset)
        with Image.open(io.BytesIO(asset.image_bytes())) as picture:
            assert picture.format in ("JPEG", "PNG")
            assert picture.size == (asset.width_px, asset.height_px)


# --- pass-through of print-size JPEGs -----------------------------------------------------


def _print_size_jpeg(path: Path, *, gps: bool = True) -> bytes:
    img = Image.effect_noise((800, 1000), 40).convert("RGB")
    exif = Image.Exif()
    if gps:
        exif[0x8825] = {1: "N", 2: (34.0, 3.0, 12.5)}  # GPS IFD: where the photo was taken
    exif[0x010F] = "PhoneMaker"
    img.save(path, "JPEG", quality=80, exif=exif.tobytes(), comment=b"secret comment")
    return path.read_bytes()


def _scan_data(jpeg: bytes) -> bytes:
    return jpeg[jpeg.index(b"\xff\xda") :]


def test_print_size_jpeg_passes_through_without_metadata(cache: EvidenceCache, tmp_path: Path):
    original = _print_size_jpeg(tmp_path / "p.jpg")
    asset = only_image(cache.assets(tmp_path / "p.jpg", display_path="p.jpg"))
    placed = asset.image_bytes()
    assert _scan_data(placed) == _scan_data(original)  # no second lossy compression
    assert (asset.width_px, asset.height_px) == (800, 1000)
    with Image.open(io.BytesIO(asset.image_bytes())) as img:
        assert not img.getexif() and "comment" not in img.info
    assert b"PhoneMaker" not in placed and b"secret comment" not in placed


def test_truncated_print_size_jpeg_is_still_a_placeholder(cache: EvidenceCache, tmp_path: Path):
    data = _print_size_jpeg(tmp_path / "p.jpg")
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) * 2 // 3])
    placeholder = only_placeholder(cache.assets(tmp_path / "cut.jpg", display_path="cut.jpg"))
    assert placeholder.reason in (evidence.REASON_TRUNCATED, evidence.REASON_CORRUPT)


def test_rotated_or_large_jpegs_are_not_passed_through(cache: EvidenceCache, tmp_path: Path):
    img = Image.effect_noise((800, 1000), 40).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(tmp_path / "r.jpg", "JPEG", quality=80, exif=exif.tobytes())
    asset = only_image(cache.assets(tmp_path / "r.jpg", display_path="r.jpg"))
    assert (asset.width_px, asset.height_px) == (1000, 800)  # turned upright, so re-encoded


# --- evidence PDFs whose fonts are not embedded are rasterised --------------------------------


def helvetica_pdf(path: Path, pages: int = 2) -> None:
    """A statement as reportlab writes it without setting a font: unembedded Helvetica.

    Named explicitly: once our fonts are registered in the process, reportlab's default
    initial font is our body font.
    """
    c = canvas.Canvas(str(path), pagesize=A4, invariant=1, initialFontName="Helvetica")
    for n in range(pages):
        c.drawString(72, 720, f"Account statement, page {n + 1}")
        c.showPage()
    c.save()


def test_pdf_with_unembedded_font_becomes_images(tmp_path: Path, cache: EvidenceCache) -> None:
    src = tmp_path / "statement.pdf"
    helvetica_pdf(src)
    assets = cache.assets(src, display_path="statement.pdf")
    assert [type(a) for a in assets] == [ImageAsset, ImageAsset]
    assert [a.page for a in assets] == [0, 1]  # type: ignore[union-attr]
    assert all(a.note == evidence.NOTE_UNEMBEDDED_FONTS for a in assets)  # type: ignore[union-attr]
    first = assets[0]
    assert isinstance(first, ImageAsset)
    # fitted into the 156 × 225 mm text block at 200 dpi (A4 is limited by the width)
    assert first.width_px == pytest.approx(156 / 25.4 * 200, abs=2)
    assert first.height_px == pytest.approx(first.width_px * A4[1] / A4[0], abs=2)
    with Image.open(io.BytesIO(first.image_bytes())) as img:
        assert img.format == "JPEG" and img.mode == "L"  # black on white: stored grey
        assert img.size == (first.width_px, first.height_px)
        assert ImageStat.Stat(img).extrema[0][0] < 100  # the text is there
    assert evidence.raster_warning("docs/statement.pdf", first) == (
        "佐证材料 docs/statement.pdf 第 1 页使用了未嵌入的字体，已转为图像以保证打印一致"
    )
    assert evidence.raster_warning("docs/statement.pdf", *assets) == (  # type: ignore[arg-type]
        "佐证材料 docs/statement.pdf 第 1–2 页使用了未嵌入的字体，已转为图像以保证打印一致"
    )
    # cached like any image, and identical bytes when computed again
    again = EvidenceCache(cache.cache_dir).assets(src, display_path="statement.pdf")
    assert again == assets
    fresh = EvidenceCache(tmp_path / "other").assets(src, display_path="statement.pdf")
    assert [Path(a.path).read_bytes() for a in fresh] == [Path(a.path).read_bytes() for a in assets]  # type: ignore[union-attr]


def test_pdf_with_embedded_fonts_stays_vector(tmp_path: Path, cache: EvidenceCache) -> None:
    src = tmp_path / "agreement.pdf"
    c = canvas.Canvas(str(src), pagesize=A4, initialFontName=embedded_font(), invariant=1)
    c.drawString(72, 720, "Loan agreement")
    c.showPage()
    c.save()
    assert evidence.fonts_embedded(PdfReader(src).pages[0])
    assert cache.assets(src, display_path="agreement.pdf") == [
        PdfPageAsset(src, 0, pytest.approx(A4[0]), pytest.approx(A4[1]), 0)  # type: ignore[arg-type]
    ]


def test_unembedded_font_inside_a_form_xobject_is_found(tmp_path: Path) -> None:
    from pypdf.generic import (
        ArrayObject,
        DecodedStreamObject,
        DictionaryObject,
        FloatObject,
        NameObject,
    )

    inner = tmp_path / "inner.pdf"
    helvetica_pdf(inner, pages=1)
    source_page = PdfReader(inner).pages[0]
    writer = PdfWriter()
    page = writer.add_blank_page(595, 842)
    form = DecodedStreamObject()
    form.set_data(source_page.get_contents().get_data())  # type: ignore[union-attr]
    form.update({
        NameObject("/Type"): NameObject("/XObject"),
        NameObject("/Subtype"): NameObject("/Form"),
        NameObject("/BBox"): ArrayObject([FloatObject(0), FloatObject(0), FloatObject(595), FloatObject(842)]),
        NameObject("/Resources"): source_page["/Resources"].clone(writer),
    })
    page[NameObject("/Resources")] = DictionaryObject({
        NameObject("/XObject"): DictionaryObject({NameObject("/Fm0"): writer._add_object(form)})
    })
    page.replace_contents(DecodedStreamObject())
    page.get_contents().set_data(b"q /Fm0 Do Q")  # type: ignore[union-attr]
    src = tmp_path / "nested.pdf"
    with src.open("wb") as f:
        writer.write(f)
    reader = PdfReader(src)
    assert "/Font" not in reader.pages[0]["/Resources"]
    assert not evidence.fonts_embedded(reader.pages[0])
    assets = EvidenceCache(tmp_path / "cache").assets(src, display_path="nested.pdf")
    assert isinstance(assets[0], ImageAsset) and assets[0].note


def test_composite_font_without_program_is_not_embedded() -> None:
    from pypdf.generic import ArrayObject, DictionaryObject, NameObject

    def page_with(font: DictionaryObject) -> DictionaryObject:
        return DictionaryObject({
            NameObject("/Resources"): DictionaryObject({
                NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})
            })
        })

    descriptor = DictionaryObject({NameObject("/FontName"): NameObject("/STSong-Light")})
    cid = DictionaryObject({
        NameObject("/Subtype"): NameObject("/CIDFontType0"),
        NameObject("/FontDescriptor"): descriptor,
    })
    type0 = DictionaryObject({
        NameObject("/Subtype"): NameObject("/Type0"),
        NameObject("/DescendantFonts"): ArrayObject([cid]),
    })
    assert not evidence.fonts_embedded(page_with(type0))
    descriptor[NameObject("/FontFile2")] = DictionaryObject()
    assert evidence.fonts_embedded(page_with(type0))
    # a Type 3 font is drawn by content streams: embedded unless its own resources are not
    type3 = DictionaryObject({NameObject("/Subtype"): NameObject("/Type3")})
    assert evidence.fonts_embedded(page_with(type3))
    type3[NameObject("/Resources")] = page_with(
        DictionaryObject({NameObject("/Subtype"): NameObject("/Type1"), NameObject("/BaseFont"): NameObject("/Helvetica")})
    )["/Resources"]
    assert not evidence.fonts_embedded(page_with(type3))


def test_print_size_jpeg_is_passed_through_without_decoding(cache: EvidenceCache, tmp_path: Path, monkeypatch):
    """Checking its segments is enough; decoding it only to look for damage cost 2 ms a photo."""
    from PIL import ImageFile

    _print_size_jpeg(tmp_path / "p.jpg")
    decoded = []
    real = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self) or real(self))
    only_image(cache.assets(tmp_path / "p.jpg", display_path="p.jpg"))
    assert decoded == []


@pytest.mark.parametrize(("marker", "precision"), [(0xC3, 8), (0xC9, 8), (0xCA, 8), (0xC1, 12)])
def test_jpegs_that_readers_may_not_decode_are_not_passed_through(tmp_path: Path, marker: int, precision: int):
    """Lossless, arithmetic-coded and 12-bit JPEGs are not copied into the archive as they are."""
    data = bytearray(_print_size_jpeg(tmp_path / "p.jpg"))
    assert evidence._strip_jpeg_metadata(bytes(data)) is not None
    sof = data.index(b"\xff\xc0")
    data[sof + 1] = marker
    data[sof + 4] = precision
    assert evidence._strip_jpeg_metadata(bytes(data)) is None


def test_data_after_the_end_of_a_passed_through_jpeg_is_dropped(cache: EvidenceCache, tmp_path: Path):
    """A phone's second picture after the first (MPO) has its own EXIF with the GPS position."""
    original = _print_size_jpeg(tmp_path / "p.jpg", gps=False)
    trailer = b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00GPSDATA!" + b"\x00" * 50 + b"\xff\xd9"
    (tmp_path / "mpo.jpg").write_bytes(original + trailer)
    placed = only_image(cache.assets(tmp_path / "mpo.jpg", display_path="mpo.jpg")).image_bytes()
    assert placed.endswith(b"\xff\xd9") and b"GPSDATA" not in placed
    assert _scan_data(placed) == _scan_data(original)


@pytest.mark.parametrize("data", [
    b"\xff\xda\x00\x02abc\xff\x00\xd9\xff\xd9",  # an FF 00 before a lone D9
    b"\xff\xda\x00\x02\xd9\xd9\xff\xff\xd9tail\xff\xd9",  # fill byte, then a second image
    b"\xff\xda\x00\x02\xff\xd0\xd9abc",  # restart marker, D9 without FF: cut off
    b"\xff\xda\xd9",
    b"\xff\xda",
])
def test_end_of_image_is_the_first_ff_d9_after_the_scan(data: bytes) -> None:
    """The one-byte search finds what ``bytes.find(b"\\xff\\xd9")`` finds (a passed-through
    JPEG is cut there: what follows is a phone's second picture, or nothing)."""
    for start in range(len(data)):
        if data[start:start + 2] == b"\xff\xda":
            assert evidence._end_of_image(data, start) == data.find(b"\xff\xd9", start)
    rng = random.Random(7)
    for _ in range(200):
        blob = b"\xff\xda" + bytes(rng.choice(b"\xff\xd9\x00\xd0a") for _ in range(rng.randrange(0, 40)))
        assert evidence._end_of_image(blob, 0) == blob.find(b"\xff\xd9", 0)
