"""The document model: what a section template produces, what every writer consumes.

Small frozen dataclasses, independent of reportlab and python-docx, so the PDF writer
(``render/pdf.py``) and the Word writer (``render/docx.py``) render the same thing and a
worker process can receive a whole document by pickling.

Text is plain Unicode: no markup is ever interpreted inside a string, so data containing
``<b>&amp;{{x}}`` prints literally.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Align = Literal["left", "center", "right", "justify"]
#: font roles; the template set maps each to a font (see render/fonts.py)
Role = Literal["title", "body", "heading", "kai", "table"]


@dataclass(frozen=True)
class Title:
    """The big centred title of a page (2号小标宋 by default)."""

    text: str
    subtitle: str = ""


@dataclass(frozen=True)
class Heading:
    """A heading inside a section; level 1 = 黑体, level 2 = 楷体 (GB/T 9704 一、 / （一）)."""

    text: str
    level: int = 1


@dataclass(frozen=True)
class Paragraph:
    """Running text. ``indent`` = first-line indent of two characters."""

    text: str
    align: Align = "justify"
    indent: bool = True
    role: Role = "body"
    #: font size in pt; None = the template set's size for the role
    size: float | None = None


@dataclass(frozen=True)
class KeyValue:
    """A ruled form of label/value cells, ``columns`` pairs per row.

    A value may span the rest of its row when its key ends up alone (``wide``).
    """

    rows: tuple[tuple[str, str], ...]
    columns: int = 2
    wide: tuple[str, ...] = ()  # keys whose value takes a whole row


@dataclass(frozen=True)
class Table:
    """A ruled data table; the header row repeats on every page it spans."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    #: relative column widths (same length as header); empty = equal
    widths: tuple[float, ...] = ()
    #: per-column alignment; empty = left for text
    align: tuple[Align, ...] = ()
    #: rows drawn after the body in bold (totals), not repeated
    footer: tuple[tuple[str, ...], ...] = ()
    caption: str = ""


@dataclass(frozen=True)
class Signature:
    """A line of signature fields, e.g. 户主签名（按手印）____  日期____."""

    labels: tuple[str, ...]
    date: str = ""  # printed date, or "" for a blank 年 月 日 line
    fingerprint: bool = False  # draw a dashed box for the fingerprint (按手印)


@dataclass(frozen=True)
class Spacer:
    height_mm: float


@dataclass(frozen=True)
class PageBreak:
    pass


@dataclass(frozen=True)
class QRCode:
    text: str
    size_mm: float = 28.0
    caption: str = ""


@dataclass(frozen=True)
class Evidence:
    """One evidence file; writers expand it into one page (or image) per page/frame.

    ``source`` is an absolute path checked by the loader to lie inside the household
    folder; ``display_path`` is the path as written in the record (for captions and
    placeholder pages).
    """

    source: str
    display_path: str
    title: str = ""
    kind: str = ""  # 佐证材料类型
    date: str = ""


@dataclass(frozen=True)
class ExternalPages:
    """Pages of an external PDF placed as they are, one packet page each.

    Used for a section that comes from a Word form converted by LibreOffice.  ``pages`` is
    the PDF's page count, known before layout, so the contents page and the outline stay
    true.  A page whose size differs from the packet's is scaled to fit.  The packet's
    page number is printed on each page unless ``numbered`` is false.
    """

    source: str
    pages: int
    numbered: bool = True


@dataclass(frozen=True)
class Contents:
    """The packet's table of contents; writers fill in the true page numbers."""

    header: tuple[str, str, str] = ("序号", "材料名称", "页码")


Block = (
    Title | Heading | Paragraph | KeyValue | Table | Signature | Spacer | PageBreak | QRCode | Evidence
    | Contents | ExternalPages
)

Layout = Literal["form", "prose", "cover", "evidence"]


@dataclass(frozen=True)
class Section:
    """One section of a packet (封面, 目录, 家庭成员 …)."""

    key: str  # stable identifier, e.g. "members"
    title: str  # shown in the contents and the outline
    blocks: tuple[Block, ...]
    #: "prose" = GB/T 9704 letter layout (22 lines × 28 chars); "cover" = no page number
    layout: Layout = "form"
    #: group title of a separator sheet (隔页纸) printed just before this section, if any
    separator: str | None = None
    #: listed in the contents page
    in_contents: bool = True


@dataclass(frozen=True)
class PageSetup:
    """Page geometry and type sizes, after GB/T 9704-2012 by default."""

    width_mm: float = 210.0
    height_mm: float = 297.0
    margin_top_mm: float = 37.0
    margin_left_mm: float = 28.0
    #: text block 156 × 225 mm
    text_width_mm: float = 156.0
    text_height_mm: float = 225.0
    #: 3号 = 16 pt body, 2号 = 22 pt title
    sizes: dict[str, float] = field(
        default_factory=lambda: {"title": 22.0, "body": 16.0, "heading": 16.0, "kai": 16.0, "table": 10.5}
    )
    #: prose pages: lines per page and characters per line
    prose_lines: int = 22
    prose_chars: int = 28
    #: footer page-number format; {n} = page number
    page_number_format: str = "— {n} —"

    def __hash__(self) -> int:  # sizes is a dict; hash by value for caching
        return hash((self.width_mm, self.height_mm, self.margin_top_mm, self.margin_left_mm,
                     self.text_width_mm, self.text_height_mm, tuple(sorted(self.sizes.items())),
                     self.prose_lines, self.prose_chars, self.page_number_format))


@dataclass(frozen=True)
class Document:
    """A whole packet."""

    title: str  # PDF metadata title, e.g. "冯老村 张三 档卡"
    sections: tuple[Section, ...]
    page: PageSetup = field(default_factory=PageSetup)
    subject: str = ""
    keywords: tuple[str, ...] = ()
    author: str = ""
    #: ISO date used for the PDF creation/modification date (reproducible output)
    date: str = "2000-01-01"


@dataclass(frozen=True)
class SectionPages:
    """Where a section landed in the rendered packet (0-based page indexes, inclusive)."""

    key: str
    title: str
    first: int
    last: int
    #: printed page number of the first page ("" for unnumbered pages)
    number: str = ""


@dataclass(frozen=True)
class RenderResult:
    """What a writer returns besides the file itself."""

    pages: int
    sections: tuple[SectionPages, ...]
    #: 0-based indexes of separator sheets (unnumbered)
    separators: tuple[int, ...] = ()
    #: Chinese warnings produced while rendering (placeholder pages, missing glyphs)
    warnings: tuple[str, ...] = ()
    #: the file's fonts of ours: (resource name, face marker, the characters it draws), so
    #: that collation need not read them back (``fontmerge.SharedFonts.adopt``)
    fonts: tuple[tuple[str, str, str], ...] = ()
    #: sha256 (hex) of the file's bytes, when the writer wrote them ("" otherwise): the
    #: version store and collation use it instead of reading the file again to hash it
    sha256: str = ""
