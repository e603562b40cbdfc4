"""Paper copies: the QR payload printed on a packet's cover, and checking it against the store.

The payload is short plain text so that a small QR code holds it and a person can read it
aloud: ``AB1|<household_id>|v<number>|<first 16 hex digits of the content hash>``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..errors import ArchiveError, ExitCode, StoreError, os_reason
from .store import Version, VersionStore

if TYPE_CHECKING:  # the diff machinery (pypdfium2 …) is imported only when verifying
    from .diff import FieldChange

PAYLOAD_PREFIX = "AB1"
HASH_CHARS = 16
_PAYLOAD = re.compile(
    r"^AB1\|(?P<hid>[^|\s]+)\|[vV](?P<number>\d{1,6})\|(?P<hash>[0-9a-fA-F]{8,64})$"
)

#: what a cover printed without a version claim holds (``<household_id>|<16 hex digits>``)
_UNRECORDED = re.compile(r"^[^|\s]+\|[0-9a-fA-F]{16}$")

Status = Literal["current", "outdated", "unknown"]


class PayloadError(ArchiveError):
    """The text given to ``verify`` is not an archive-builder QR payload."""

    exit_code = ExitCode.input_unusable
    kind = "二维码内容无法识别"


class QrDecodeError(ArchiveError):
    """A photo or scan cannot be read, or holds no archive-builder QR code."""

    exit_code = ExitCode.input_unusable
    kind = "二维码无法读取"


class QrDecoderMissing(QrDecodeError):
    """The optional QR decoder (zxing-cpp) is not installed."""

    exit_code = ExitCode.missing_dependency


def qr_payload(household_id: str, version_number: int, content_hash: str) -> str:
    """Return the text the packet cover prints as a QR code."""
    if "|" in household_id or not household_id.strip():
        raise ValueError(f"household id not usable in a QR payload: {household_id!r}")
    return f"{PAYLOAD_PREFIX}|{household_id}|v{version_number}|{content_hash[:HASH_CHARS].lower()}"


def parse_payload(text: str) -> tuple[str, int, str]:
    """Return ``(household_id, version, hash prefix)`` from a payload; PayloadError if malformed."""
    cleaned = text.strip().replace("｜", "|")  # full-width bars from a Chinese IME
    match = _PAYLOAD.match(cleaned)
    if match is None and _UNRECORDED.match(cleaned):
        raise PayloadError(
            f"「{cleaned}」是一份没有登记版本的档卡（生成时找不到档案输出目录），无法核对是否为最新版本。",
            hint="请用 archive-builder packet 数据目录 户编号 --store 档案输出目录 重新生成并打印，"
            "或打印 build 生成的档卡。",
        )
    if match is None:
        raise PayloadError(
            f"「{text.strip()[:80]}」不是档卡封面二维码的内容。",
            hint="应形如 AB1|户编号|v版本号|哈希，例如 AB1|4116211052010001|v2|3f9a0c1d2e4b5a69；"
            "请完整复制扫码得到的文字。",
        )
    return match["hid"], int(match["number"]), match["hash"].lower()


@dataclass
class VerifyResult:
    """Whether a paper copy is the current version of its household's packet."""

    status: Status
    household_id: str
    version: int
    hash_prefix: str
    copy: Version | None = None  # the stored version the paper copy shows
    latest: Version | None = None
    changes: list[FieldChange] = field(default_factory=list)
    reason: str = ""
    #: the output directory checked against (named in the suggested diff command)
    out_dir: Path | None = None

    @property
    def shown(self) -> int:
        """The version the paper copy is: the one its hash identifies (the number printed
        beside it may be mistyped or altered), else the printed number."""
        return self.copy.number if self.copy is not None else self.version

    @property
    def summary(self) -> str:
        from .diff import summarize

        return summarize(self.changes) if self.changes else ""

    @property
    def exit_code(self) -> int:
        """0 = current, 1 = outdated or unknown (the copy cannot be trusted as current)."""
        return int(ExitCode.ok if self.status == "current" else ExitCode.problems)

    def format_text(self) -> str:
        """Return the Chinese text the CLI prints."""
        head = f"户 {self.household_id} 版本 {self.shown}（{self.hash_prefix}）"
        if self.status == "current":
            assert self.copy is not None
            return (
                f"{head}：是最新版本。\n"
                f"  生成时间 {self.copy.when}，共 {self.copy.pages} 页。"
                + (f"\n  {self.reason}" if self.reason else "")
            )
        if self.status == "unknown":
            return f"{head}：无法核对，版本库中没有登记这一版。\n  {self.reason}"
        assert self.copy is not None and self.latest is not None
        from .diff import non_data_change

        lines = [
            (
                f"{head}：已过期，最新为版本 {self.latest.number}"
                f"（{self.latest.when}，{self.latest.pages} 页）。"
            ),
            f"  此后的变化：{self.summary or non_data_change(self.copy, self.latest)}",
        ]
        if self.reason:
            lines.append(f"  {self.reason}")
        from .diff import _change_line

        lines += [f"    {_change_line(c)}" for c in self.changes]
        out = ""
        if self.out_dir is not None:
            shown = str(self.out_dir)
            out = f'-o "{shown}" ' if " " in shown else f"-o {shown} "
        lines.append(
            f"  请重新打印，或用 archive-builder diff {out}{self.household_id} "
            f"{self.copy.number} {self.latest.number} 查看详情。"
        )
        return "\n".join(lines)


def verify(store: VersionStore, text: str) -> VerifyResult:
    """Return whether the paper copy named by the QR text is current, outdated or unknown."""
    household_id, number, hash_prefix = parse_payload(text)
    result = VerifyResult(
        "unknown", household_id, number, hash_prefix, out_dir=store.out_dir
    )
    versions = store.versions(household_id)
    if not versions:
        result.reason = (
            "该户在此输出目录的版本库中没有任何版本；请检查 -o 指定的输出目录。"
        )
        return result
    by_number = {v.number: v for v in versions}
    copy = by_number.get(number)
    if copy is None or not copy.content_hash.startswith(hash_prefix):
        # the hash is what the paper shows for certain; the number could be mistyped
        matches = [v for v in versions if v.content_hash.startswith(hash_prefix)]
        if not matches:
            result.reason = _never_recorded(number, hash_prefix, copy, versions)
            return result
        copy = matches[-1]
        result.reason = (
            f"二维码中的版本号 {number} 与哈希不符，按哈希认定为版本 {copy.number}。"
        )
    latest = versions[-1]
    result.copy, result.latest = copy, latest
    if copy.content_hash == latest.content_hash:
        result.status = "current"
        return result
    result.status = "outdated"
    try:
        old = json.loads(store.blob(copy.record_sha))
        new = json.loads(store.blob(latest.record_sha))
    except StoreError as exc:
        result.reason = f"无法读取记录以列出变化：{exc.message}"
        return result
    from .diff import diff_evidence_files, diff_records

    result.changes = diff_records(old, new) + diff_evidence_files(
        copy.evidence, latest.evidence
    )
    return result


def _never_recorded(number: int, hash_prefix: str, same_number: Version | None, versions: list[Version]) -> str:
    """Why a paper copy whose hash no stored version has is not found: it was never recorded here."""
    latest = versions[-1]
    if same_number is not None:
        # as many digits as the paper shows: a shorter prefix can hide the one that differs
        digits = max(len(hash_prefix), len(same_number.short_hash))
        said = (f"此输出目录登记的第 {number} 版哈希为 {same_number.content_hash[:digits]}，"
                f"与纸质件的 {hash_prefix} 不同")
    else:
        listed = "、".join(str(v.number) for v in versions)
        said = f"此输出目录只登记了第 {listed} 版，没有第 {number} 版"
    return (
        f"{said}：这份档卡的内容从未在此输出目录登记过。常见原因：它由另一个输出目录生成，"
        f"或是用未登记版本的方式单独生成的。此输出目录的最新版本为第 {latest.number} 版"
        f"（{latest.when}，{latest.short_hash}）；请打印最新版本，或用 -o 指定生成这份档卡时的输出目录。"
    )


def decode_qr_image(path: Path) -> str:
    """Return the text of the first QR code in a photo or scan (needs the zxing-cpp package)."""
    try:
        import zxingcpp  # type: ignore[import-not-found]
    except ImportError:
        raise QrDecoderMissing(
            "读取照片中的二维码需要 zxing-cpp 软件包，当前未安装。",
            hint="运行 pip install zxing-cpp；或用手机扫码后把文字直接传给 verify。",
        ) from None
    from PIL import Image, ImageOps

    from ..archive.hashing import open_regular

    try:
        with open_regular(path) as handle, Image.open(handle) as raw:  # a FIFO never blocks
            if raw.format == "JPEG" and raw.width * raw.height > _QR_PIXELS:
                raw.draft("L", (raw.width // 2, raw.height // 2))  # a QR code needs no more
            if raw.width * raw.height > _QR_PIXELS * 4:
                raise Image.DecompressionBombError(f"{raw.width}x{raw.height}")
            image = ImageOps.exif_transpose(raw).convert("L")
    except Image.DecompressionBombError as exc:
        raise QrDecodeError(
            f"图片 {path.name} 的像素过多，超过安全上限（可能是解压炸弹），未读取",
            hint="请用手机正常拍摄封面二维码（或把图片缩小到长边不超过 6000 像素）后重试。",
        ) from exc
    except OSError as exc:
        raise QrDecodeError(
            f"无法打开图片 {path}：{_image_reason(exc)}", hint="检查文件是否为完整的图片。"
        ) from exc
    except (ValueError, MemoryError, SyntaxError) as exc:  # decoders raise these on hostile files
        raise QrDecodeError(
            f"无法打开图片 {path}：不是可识别的图片格式，或文件已损坏", hint="检查文件是否为完整的图片。"
        ) from exc
    # zxing-cpp tries rotations and downscaled copies itself
    for found in zxingcpp.read_barcodes(image):
        if found.text.startswith(PAYLOAD_PREFIX + "|"):
            return str(found.text)
    raise QrDecodeError(
        f"在图片 {path.name} 中没有找到档卡二维码。",
        hint="请正面拍摄封面二维码，保证清晰、无反光、二维码占画面较大比例。",
    )


#: pixels of a phone photo of a cover (a 48 MP phone camera is 8000×6000)
_QR_PIXELS = 50_000_000


def _image_reason(exc: OSError) -> str:
    """Why a photo of a cover could not be opened: not an image Pillow knows, or the system's reason."""
    from PIL import UnidentifiedImageError

    return "不是可识别的图片格式，或文件已损坏" if isinstance(exc, UnidentifiedImageError) else os_reason(exc)
