"""WordprocessingML building blocks shared by the Word writer's modules (:mod:`.docx`,
:mod:`.docxwriter`, :mod:`.docxtables`, :mod:`.docxpictures`, :mod:`.docxpackage`,
:mod:`.forms`): namespaces, units, the packet's Word constants, element helpers that keep
the schema's child order, text clean-up.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from lxml import etree

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
R_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
XML_NS = "http://www.w3.org/XML/1998/namespace"
RT_FOOTER = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/footer"
RT_THUMBNAIL = "http://schemas.openxmlformats.org/package/2006/relationships/metadata/thumbnail"

TWIPS_PER_MM = 1440 / 25.4
EMU_PER_MM = 36000

#: default font per role: names that Word and WPS on Chinese Windows know
DEFAULT_FONT_NAMES: dict[str, str] = {
    "title": "宋体",
    "body": "仿宋",
    "heading": "黑体",
    "kai": "楷体",
    "table": "宋体",
}
#: footer page numbers: 4号 (14 pt) 宋体 after GB/T 9704
PAGE_NUMBER_SIZE = 14.0
#: left and right cell margin of the packet's tables: the PDF's (3 pt)
CELL_MARGIN = 60
#: the smallest text scale of a table (10.5 pt → 7.9 pt): narrower columns break long
#: labels at their natural points (:func:`~archive_builder.render.docxtables.natural_pieces`)
TABLE_SMALLEST = 0.75
LABEL_SHADE = "E0E0E0"  # the PDF's 0.88 grey
#: the same constants as the PDF writer, so both outputs look alike
CONTENTS_SIZE = 12.0
CAPTION_SIZE = 10.5
EMPTY_MARK = "年　月　日"
PLACEHOLDER_TEXT = "材料缺失/无法读取：{path}"
#: PDF evidence pages are rendered to PNG at this resolution for Word
PDF_PAGE_DPI = 150
#: vertical room left for the caption lines above an evidence picture
EVIDENCE_CAPTION_MM = 22.0

BOOKMARK_PREFIX = "_ab"
SEPARATOR_BOOKMARK_PREFIX = "_abs"

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")



@functools.lru_cache(maxsize=None)
def w(tag: str) -> str:
    """Clark name of a WordprocessingML tag: ``w("p")`` → ``{ns}p`` (memoised: a packet
    creates tens of thousands of elements)."""
    return f"{{{W_NS}}}{tag}"


_SubElement = etree.SubElement
W_R = w("r")
W_T = w("t")
#: ``xml:space="preserve"`` of a ``w:t``
PRESERVE = {f"{{{XML_NS}}}space": "preserve"}


@functools.lru_cache(maxsize=8192)
def _em_width(text: str) -> float:
    """Width of ``text`` in em: CJK and full-width characters 1, others 0.65 (digits and Latin
    letters of the widest fonts Word or LibreOffice may put in place of 宋体, e.g. DejaVu Sans)."""
    import unicodedata

    return sum(1.0 if unicodedata.east_asian_width(ch) in "WF" else 0.65 for ch in text)


def _el(tag: str, parent: Any = None, **attrs: Any) -> Any:
    """Create ``w:<tag>`` with ``w:``-namespaced attributes (``val="x"`` → ``w:val``)."""
    attrib = {w(k): str(v) for k, v in attrs.items() if v is not None} if attrs else None
    if parent is None:
        return etree.Element(w(tag), attrib, nsmap={"w": W_NS})
    return _SubElement(parent, w(tag), attrib)


PPR_ORDER = ["pStyle", "keepNext", "keepLines", "pageBreakBefore", "framePr", "widowControl", "numPr", "suppressLineNumbers", "pBdr", "shd", "tabs", "suppressAutoHyphens", "kinsoku", "wordWrap", "overflowPunct", "topLinePunct", "autoSpaceDE", "autoSpaceDN", "bidi", "adjustRightInd", "snapToGrid", "spacing", "ind", "contextualSpacing", "mirrorIndents", "suppressOverlap", "jc", "textDirection", "textAlignment", "textboxTightWrap", "outlineLvl", "divId", "cnfStyle", "rPr", "sectPr", "pPrChange"]
TBLPR_ORDER = ["tblStyle", "tblpPr", "tblOverlap", "bidiVisual", "tblStyleRowBandSize", "tblStyleColBandSize", "tblW", "jc", "tblCellSpacing", "tblInd", "tblBorders", "shd", "tblLayout", "tblCellMar", "tblLook", "tblCaption", "tblDescription"]
RPR_ORDER = ["rStyle", "rFonts", "b", "bCs", "i", "iCs", "caps", "smallCaps", "strike", "dstrike", "outline", "shadow", "emboss", "imprint", "noProof", "snapToGrid", "vanish", "webHidden", "color", "spacing", "w", "kern", "position", "sz", "szCs", "highlight", "u", "effect", "bdr", "shd", "fitText", "vertAlign", "rtl", "cs", "em", "lang", "eastAsianLayout", "specVanish", "oMath"]
SECTPR_ORDER = ["headerReference", "footerReference", "footnotePr", "endnotePr", "type", "pgSz", "pgMar", "paperSrc", "pgBorders", "lnNumType", "pgNumType", "cols", "formProt", "vAlign", "noEndnote", "titlePg", "textDirection", "bidi", "rtlGutter", "docGrid", "printerSettings"]
STYLE_ORDER = ["name", "aliases", "basedOn", "next", "link", "autoRedefine", "hidden", "uiPriority", "semiHidden", "unhideWhenUsed", "qFormat", "locked", "personal", "personalCompose", "personalReply", "rsid", "pPr", "rPr", "tblPr", "trPr", "tcPr", "tblStylePr"]


def _ordered(parent: Any, tag: str, order: list[str], **attrs: Any) -> Any:
    """Insert ``w:<tag>`` into ``parent`` at its schema position (replacing one present)."""
    old = parent.find(w(tag))
    if old is not None:
        parent.remove(old)
    el = _el(tag)
    for k, v in attrs.items():
        if v is not None:
            el.set(w(k), str(v))
    rank = order.index(tag)
    for i, child in enumerate(parent):
        name = etree.QName(child).localname
        if name in order and order.index(name) > rank:
            parent.insert(i, el)
            return el
    parent.append(el)
    return el


def ppr_set(ppr: Any, tag: str, **attrs: Any) -> Any:
    return _ordered(ppr, tag, PPR_ORDER, **attrs)


def clean_text(text: str) -> str:
    """Drop characters that XML 1.0 cannot carry (control characters, lone surrogates)."""
    return _INVALID_XML.sub("", text)


