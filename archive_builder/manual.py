"""The user documents shipped inside the package (``archive-builder help 主题``).

``docs/`` is installed as ``archive_builder/builtin_docs`` (setup.cfg maps it there, as it does
``templates/``); in a checkout or an editable install the documents are read from ``docs/``.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ArchiveError, ExitCode

#: topic -> (file, one-line description); the first name of a topic is the one help lists
TOPICS: dict[str, tuple[str, str]] = {
    "数据格式": ("record-format.md", "数据目录的格式：archive.toml、village.toml、household.yaml、佐证材料、表格列名"),
    "模板": ("templates.md", "修改模板：模板集、各部分的 XML 模板、Word 表单"),
}
#: other names a user may type for a topic
ALIASES = {"record-format": "数据格式", "格式": "数据格式", "数据": "数据格式", "templates": "模板"}


class UnknownTopic(ArchiveError):
    exit_code = ExitCode.input_unusable
    kind = "没有这个说明"


def docs_root() -> Path:
    """Return the folder holding the shipped documents."""
    here = Path(__file__).resolve().parent
    installed = here / "builtin_docs"
    if (installed / "record-format.md").is_file():
        return installed
    return here.parent / "docs"


def topic_path(topic: str) -> Path:
    """Return the document of ``topic`` (a name of :data:`TOPICS` or an alias)."""
    name = ALIASES.get(topic.strip().lower(), topic.strip())
    if name not in TOPICS:
        listed = "、".join(TOPICS)
        raise UnknownTopic(f"没有名为「{topic}」的说明", hint=f"可选：{listed}，例如 archive-builder help 数据格式")
    return docs_root() / TOPICS[name][0]
