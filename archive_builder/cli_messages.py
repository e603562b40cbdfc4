"""Chinese for click's own messages (usage errors, prompts, help headings).

click marks its messages for gettext (``from gettext import gettext as _`` in each module) but
ships no catalogues, and gettext picks a language from LANGUAGE/LC_*/LANG, which a Chinese
Windows PC usually does not set. Everything a user reads is Chinese, so ``install`` points
those modules' ``_``/``ngettext`` at the table below. A message click adds or rewords later
falls back to its English text; it never fails.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

#: click message id → Chinese (placeholders kept as click fills them)
MESSAGES: dict[str, str] = {
    "Usage:": "用法：",
    "Try '{command} {option}' for help.": "运行 '{command} {option}' 查看帮助。",
    "Error: {message}": "错误：{message}",
    "Invalid value: {message}": "取值无效：{message}",
    "Invalid value for {param_hint}: {message}": "{param_hint} 的取值无效：{message}",
    "Missing argument": "缺少参数",
    "Missing option": "缺少选项",
    "Missing parameter": "缺少参数",
    "Missing {param_type}": "缺少{param_type}",
    "Missing parameter: {param_name}": "缺少参数：{param_name}",
    "No such option {name!r}.": "没有选项 {name!r}。",
    "No such option: {name}": "没有选项：{name}",
    "No such command {name!r}.": "没有命令 {name!r}。",
    "Missing command.": "缺少命令。",
    "Option {name!r} does not take a value.": "选项 {name!r} 不接受取值。",
    "Argument {name!r} takes {nargs} values.": "参数 {name!r} 需要 {nargs} 个值。",
    "Invalid start character for option ({option})": "选项的开头字符无效（{option}）",
    "{value!r} is not a valid {number_type}.": "{value!r} 不是有效的数字。",
    "{value} is not in the range {range}.": "{value} 不在范围 {range} 内。",
    "{value!r} is not a valid boolean. Recognized values: {states}": "{value!r} 不是有效的是/否值，可用：{states}",
    "{value!r} is not a valid UUID.": "{value!r} 不是有效的 UUID。",
    "{name} {filename!r} does not exist.": "{name} {filename!r} 不存在。",
    "{name} {filename!r} is a file.": "{name} {filename!r} 是文件，不是文件夹。",
    "{name} {filename!r} is a directory.": "{name} {filename!r} 是文件夹，不是文件。",
    "{name} {filename!r} is not readable.": "{name} {filename!r} 无法读取。",
    "{name} {filename!r} is not writable.": "{name} {filename!r} 无法写入。",
    "{name} {filename!r} is not executable.": "{name} {filename!r} 无法执行。",
    "file": "文件",
    "directory": "文件夹",
    "path": "路径",
    "Could not open file {filename!r}: {message}": "无法打开文件 {filename!r}：{message}",
    "Aborted!": "已中止。",
    "Show this message and exit.": "显示本帮助并退出",
    "Show the version and exit.": "显示版本并退出",
    "%(prog)s, version %(version)s": "%(prog)s，版本 %(version)s",
    "Options": "选项",
    "Commands": "命令",
    "default: {default}": "默认：{default}",
    "env var: {var}": "环境变量：{var}",
    "deprecated": "已弃用",
    "required": "必填",
    "Value must be an iterable.": "取值必须是一组值。",
    "Error: invalid input": "错误：输入无效",
    "Repeat for confirmation": "请再输入一次以确认",
    "Error: The two entered values do not match.": "错误：两次输入不一致。",
    "Do you want to continue?": "是否继续？",
    "Press any key to continue...": "按任意键继续……",
}

#: (singular id, plural id) → (Chinese singular, Chinese plural)
PLURALS: dict[tuple[str, str], tuple[str, str]] = {
    ("Did you mean {possibility}?", "(Did you mean one of: {possibilities}?)"): (
        "是否想用 {possibility}？", "（是否想用其中之一：{possibilities}？）"),
    ("Got unexpected extra argument ({args})", "Got unexpected extra arguments ({args})"): (
        "多余的参数（{args}）", "多余的参数（{args}）"),
    ("Option {name!r} requires an argument.", "Option {name!r} requires {nargs} arguments."): (
        "选项 {name!r} 需要一个取值。", "选项 {name!r} 需要 {nargs} 个取值。"),
    ("{value!r} is not {choice}.", "{value!r} is not one of {choices}."): (
        "{value!r} 不是 {choice}。", "{value!r} 不是以下之一：{choices}。"),
    ("{value!r} does not match the format {format}.", "{value!r} does not match the formats {formats}."): (
        "{value!r} 不符合格式 {format}。", "{value!r} 不符合以下任一格式：{formats}。"),
    ("Takes {nargs} values but 1 was given.", "Takes {nargs} values but {len} were given."): (
        "需要 {nargs} 个值，只给了 1 个。", "需要 {nargs} 个值，给了 {len} 个。"),
}


def gettext(message: str) -> str:
    return MESSAGES.get(message, message)


def ngettext(singular: str, plural: str, n: int) -> str:
    chinese = PLURALS.get((singular, plural))
    if chinese is None:
        return singular if n == 1 else plural
    return chinese[0] if n == 1 else chinese[1]


def display_width(text: str) -> int:
    """Columns ``text`` takes in a terminal: 2 for each wide (CJK) character, as help columns need."""
    import unicodedata

    from click._compat import strip_ansi

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in strip_ansi(text))


def _write_heading(self: Any, heading: str) -> None:
    self.write(f"{'':>{self.current_indent}}{heading}：\n")


def _chinese_full_stop(format_message: Callable[[Any], str]) -> Callable[[Any], str]:
    """click ends "Missing argument 'DATA'" with an English full stop of its own."""
    import re

    def chinese(self: Any) -> str:
        return re.sub(r"(['\"])\.", r"\1。", format_message(self), count=1)

    chinese._chinese = True  # type: ignore[attr-defined]
    return chinese


def install() -> None:
    """Make every loaded click module translate with the tables above."""
    import click
    import click.formatting

    # help columns are aligned by character count; Chinese characters take two columns
    click.formatting.term_len = display_width  # type: ignore[assignment]
    # Chinese punctuation where click writes its own: "选项：" headings, "缺少参数 'DATA'。"
    click.formatting.HelpFormatter.write_heading = _write_heading  # type: ignore[method-assign]
    missing = click.exceptions.MissingParameter
    if not getattr(missing.format_message, "_chinese", False):
        missing.format_message = _chinese_full_stop(missing.format_message)  # type: ignore[method-assign,assignment]
    del click
    functions: dict[str, Callable[..., str]] = {"_": gettext, "ngettext": ngettext}
    for name, module in list(sys.modules.items()):
        if name == "click" or name.startswith("click."):
            for attr, function in functions.items():
                if callable(getattr(module, attr, None)):
                    setattr(module, attr, function)
