"""The ``archive-builder`` command line: parse, call one core function, print, exit.

Every command calls one function of :mod:`archive_builder.api` (the web app calls the same
ones) and prints its result; this module imports nothing else of the core but the errors.
Adding a command is adding one function at the end of this file::

    @main.command("history")
    @OUT_OPTION
    @click.argument("household_id")
    def history_cmd(out: Path, household_id: str) -> ExitCode:
        \"\"\"列出一户的全部版本。\"\"\"
        click.echo(api.history(out, household_id).format_text())
        return ExitCode.ok

The core raises ``ArchiveError`` subclasses; ``ArchiveGroup.invoke`` (in ``cli_group``, with
the Chinese help) is the one place that turns them into ``类型：说明`` on stderr and their
exit code, so commands never catch them. A command returns an ``ExitCode`` (None means ok). Help texts are Chinese.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

import click

from . import __version__, api, cli_messages
from .cli_group import ArchiveGroup, Options, _tolerant_streams
from .errors import ArchiveError, ExitCode, ValidationFailed, quiet_library_logs

cli_messages.install()  # click's own messages (usage errors, prompts) in Chinese


#: the data directory argument of every command (existence is checked by the core, in Chinese)
DATA_DIR = click.Path(path_type=Path, file_okay=True, dir_okay=True)


class Day(click.ParamType):
    """A date option, spelled as records may spell dates (2025-06-02, 2025.6.2, 2025年6月2日)."""

    name = "日期"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        try:
            return api.parse_day(str(value))
        except ArchiveError as exc:
            self.fail(f"{exc.message}；{exc.hint}", param, ctx)


DAY = Day()


@click.group(cls=ArchiveGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__,
    "--version",
    prog_name="archive-builder",
    message="%(prog)s %(version)s",
    help="显示版本号并退出",
)
@click.option("-v", "--verbose", count=True, help="显示更多信息；出错时显示程序调用栈")
@click.option("-q", "--quiet", is_flag=True, help="只显示错误和汇总")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """archive-builder：把农户数据生成为统一格式的扶贫档卡（一户一档）。

    先用 validate 检查数据目录，再生成档卡。数据格式：archive-builder help 数据格式。
    """
    _tolerant_streams()
    if verbose:  # the libraries' warnings too, for whoever investigates a problem
        import logging

        logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    quiet_library_logs()
    ctx.obj = Options(verbose=verbose, quiet=quiet)


# --- commands ----------------------------------------------------------------------------------


@main.command("validate")
@click.argument("data", type=DATA_DIR)
@click.option(
    "--strict",
    is_flag=True,
    help="严格模式：警告（词表外名称、缺少的佐证材料等）也算错误",
)
@click.option(
    "--json", "as_json", is_flag=True, help="以 JSON 输出到标准输出，供脚本使用"
)
@click.option(
    "--today",
    type=DAY,
    hidden=True,
    help="按这一天检查「日期不晚于今天」（测试用）",
)
@click.pass_obj
def validate(
    opts: Options, data: Path, strict: bool, as_json: bool, today: date | None
) -> ExitCode:
    """检查数据目录：格式、身份证号码、必填项、佐证材料等。

    退出码：0 没有问题；1 有错误（--strict 时警告也算）；2 数据目录无法使用。
    """
    report = api.validate(data, strict=strict, today=today)
    if as_json:
        click.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        click.echo(report.format_text(quiet=opts.quiet))
    return ExitCode.problems if report.summary.errors else ExitCode.ok


def _echo_problems(problems: list[Any], *, quiet: bool) -> None:
    for problem in problems:
        if quiet and not problem.is_error:
            continue
        click.echo(problem.format(), err=True)


def _formats(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    formats = tuple(dict.fromkeys(f.strip().lower() for f in value.split(",") if f.strip()))
    unknown = [f for f in formats if f not in ("pdf", "docx")]
    if unknown or "pdf" not in formats:
        raise click.BadParameter("可选 pdf 或 pdf,docx（PDF 总会生成）", param_hint="--format")
    return formats


@main.command("packet")
@click.argument("data", type=DATA_DIR)
@click.argument("household_id")
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), metavar="文件或文件夹",
              help="输出的 .pdf 或 .docx 文件，或文件夹（默认：当前文件夹）")
@click.option("--format", "formats", default=None, help="输出格式：pdf 或 pdf,docx（同时生成可编辑的 Word 文档）")
@click.option("--strict", is_flag=True, help="严格模式：警告也视为错误，不生成档卡")
@click.option("--templates", "template_set", default=None, help="使用的模板集（默认：archive.toml 中 [templates] set）")
@click.option("--store", "store_dir", type=click.Path(path_type=Path),
              help="登记版本的档案输出目录（默认：archive.toml 中 [output] dir，或数据目录旁生成过的「<数据目录名>-档案输出」）")
@click.pass_obj
def packet_cmd(opts: Options, data: Path, household_id: str, out: Path | None, formats: str | None, strict: bool,
               template_set: str | None, store_dir: Path | None) -> ExitCode:
    """生成一户的档卡 PDF，登记为新版本，打印文件路径、页数和版本号。

    与 build 生成的档卡相同（件号、版本号、哈希都一样），登记在同一个档案输出目录的版本库中，
    打印出来可以用 verify 核对。先校验该户数据；有错误时列出问题、不生成。
    """
    try:
        outcome = api.render_packet(data, household_id, out, formats=_formats(formats), strict=strict,
                                    template_set=template_set, store_dir=store_dir)
    except ValidationFailed as exc:
        _echo_problems(exc.problems, quiet=opts.quiet)
        raise
    _echo_problems(list(outcome.warnings), quiet=opts.quiet)
    for text in outcome.result.warnings:
        if not opts.quiet:
            click.echo(f"警告：{text}", err=True)
    if outcome.not_recorded:
        click.echo(f"注意：{outcome.not_recorded}", err=True)
    elif outcome.version is not None and not opts.quiet:
        state = "已登记为新版本" if outcome.new_version else "内容未变，与已登记的版本相同"
        click.echo(f"第 {outcome.version} 版（{state}，版本库：{outcome.store_dir}）", err=True)
    click.echo(f"{outcome.result.pdf}\t{outcome.result.pages} 页")
    if outcome.result.docx:
        click.echo(f"{outcome.result.docx}")
    return ExitCode.ok


@main.command("build")
@click.argument("data", type=DATA_DIR)
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), help="输出目录（默认：数据目录旁的「<数据目录名>-档案输出」）")
@click.option("--village", "villages", multiple=True, help="只生成这个村（村代码或村名，可重复）")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=None, help="并行进程数（默认：CPU 核数）")
@click.option("--force", is_flag=True, help="全部重新生成，不论是否有变化")
@click.option("--format", "formats", default=None, help="输出格式：pdf 或 pdf,docx")
@click.option("--strict", is_flag=True, help="严格模式：有警告的户也不生成")
@click.option("--templates", "template_set", default=None,
              help="使用的模板集，如 county-forms（默认：archive.toml 中 [templates] set）")
@click.pass_obj
def build_cmd(opts: Options, data: Path, out: Path | None, villages: tuple[str, ...], jobs: int | None,
              force: bool, formats: str | None, strict: bool, template_set: str | None) -> ExitCode:
    """按村生成全部档卡、档案盒 PDF、竖条和 manifest.json。

    只重新生成内容有变化的户。退出码：0 全部生成；3 部分户未生成；2 数据目录无法使用；4 输出目录无法使用。
    """
    from .progress import TerminalReporter

    reporter = TerminalReporter(quiet=opts.quiet, verbose=bool(opts.verbose))
    try:
        summary = api.build(data, out, villages=villages, jobs=jobs, force=force, formats=_formats(formats),
                            strict=strict, template_set=template_set, progress=reporter)
    finally:
        reporter.close()
    _echo_problems(summary.problems, quiet=opts.quiet)
    for hid, reason in summary.failed:
        click.echo(f"未生成：户 {hid}：{reason}", err=True)
    assert summary.out_dir is not None
    click.echo(f"{summary.out_dir / 'manifest.json'}")
    click.echo(summary.line())
    return ExitCode.partial if summary.failed else ExitCode.ok


OUT_OPTION = click.option("-o", "--output", "out", type=click.Path(path_type=Path), required=True,
                          help="生成时的输出目录（其中的 .store 保存各版本）")


@main.command("history")
@OUT_OPTION
@click.argument("household_id")
def history_cmd(out: Path, household_id: str) -> ExitCode:
    """列出一户的全部版本：版本号、时间、哈希、页数和变化摘要。"""
    click.echo(api.history(out, household_id).format_text())
    return ExitCode.ok


@main.command("diff")
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), help="生成时的输出目录（比较版本时需要）")
@click.argument("first")
@click.argument("versions", nargs=-1)
@click.option("--report", type=click.Path(path_type=Path), help="另存比较报告（.html 或 .pdf），变化区域高亮")
def diff_cmd(out: Path | None, first: str, versions: tuple[str, ...], report: Path | None) -> ExitCode:
    """比较一户的两个版本（默认最近两版），或比较两个 PDF 文件。

    \b
    archive-builder diff -o 档案输出 户编号 [版本1 [版本2]]
    archive-builder diff 旧.pdf 新.pdf
    退出码：0 相同；1 有差异；2 出错。
    """
    if report is not None:
        api.check_report_path(report)
    # A household id is never a file; a second argument ending in .pdf means PDF mode too,
    # so a damaged or misnamed file gets the Chinese "cannot open" message, not a usage error.
    pdf_mode = (
        first.lower().endswith(".pdf")
        or (out is None and Path(first).is_file())
        or any(v.lower().endswith(".pdf") for v in versions)
    )
    if pdf_mode:
        if len(versions) != 1:
            raise click.UsageError("比较 PDF 时需要两个文件：archive-builder diff 旧.pdf 新.pdf")
        comparison = api.compare_pdfs(first, versions[0])
    else:
        if len(versions) > 2:
            raise click.UsageError("最多给出两个版本号")
        try:
            numbers = [int(v.lstrip("vV")) for v in versions]
        except ValueError as exc:
            raise click.UsageError(f"版本号应为数字，例如 1 或 v1：{' '.join(versions)}") from exc
        if out is None:
            raise click.UsageError("比较版本时请用 -o 指定生成时的输出目录")
        comparison = api.compare(out, first, *numbers)
    click.echo(comparison.format_text())
    if report is not None:
        click.echo(f"报告：{api.write_report(report, comparison)}")
    return ExitCode(comparison.exit_code)


@main.command("verify")
@OUT_OPTION
@click.argument("text", required=False)
@click.option("--image", type=click.Path(path_type=Path, exists=True, dir_okay=False), help="封面照片或扫描件（自动识别二维码）")
def verify_cmd(out: Path, text: str | None, image: Path | None) -> ExitCode:
    """核对纸质档卡是否为最新版本（封面二维码的文字或照片）。"""
    if image is None and not text:
        raise click.UsageError("请给出二维码文字，或用 --image 指定封面照片")
    result = api.verify(out, text, image)
    click.echo(result.format_text())
    return ExitCode(result.exit_code)


@main.group("store", cls=ArchiveGroup)
def store_group() -> None:
    """版本库维护。"""


@store_group.command("check")
@OUT_OPTION
def store_check_cmd(out: Path) -> ExitCode:
    """重新计算版本库中每个数据块的哈希，报告损坏或缺失。"""
    checked = api.check_store(out)
    click.echo(checked.format_text())
    return ExitCode.ok if checked.ok else ExitCode.problems


@main.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("-o", "--output", "data", type=click.Path(path_type=Path), required=True, help="写入的数据目录")
@click.option("--force", is_flag=True, help="覆盖已有的 household.yaml（表格中没有的字段保留）")
@click.option("--dry-run", is_flag=True, help="只报告将写入什么，不写任何文件")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出问题列表")
def import_cmd(file: Path, data: Path, force: bool, dry_run: bool, as_json: bool) -> ExitCode:
    """从国家系统导出的表格（.xlsx/.xls/.csv，每人一行）导入数据目录。"""
    report = api.import_sheet(file, data, force=force, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps({"problems": [p.to_json() for p in report.problems]}, ensure_ascii=False, indent=2))
    else:
        click.echo(report.format_text())
    return ExitCode(report.exit_code)


@main.command("export")
@click.argument("data", type=DATA_DIR)
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), required=True, metavar="表格文件",
              help="输出的 .xlsx 文件")
def export_cmd(data: Path, out: Path) -> ExitCode:
    """把数据目录导出为每人一行的 .xlsx 表格（与导入格式相同）。"""
    click.echo(api.export_sheet(data, out).format_text())
    return ExitCode.ok


@main.command("serve")
@click.argument("data", type=DATA_DIR)
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), help="输出目录（默认：与 build 相同）")
@click.option("--host", default="127.0.0.1", show_default=True, metavar="地址",
              help="监听地址；只在本机使用时保持 127.0.0.1，供局域网使用时需同时给出 --token")
@click.option("--port", type=click.IntRange(1, 65535), default=8421, show_default=True, help="端口")
@click.option("--open", "open_browser", is_flag=True, help="启动后用默认浏览器打开")
@click.option("--token", default=None, metavar="令牌", help="登录令牌；auto 表示随机生成（监听非本机地址时必须给出）")
def serve_cmd(data: Path, out: Path | None, host: str, port: int, open_browser: bool, token: str | None) -> ExitCode:
    """在浏览器中使用：启动本机网页服务（乡镇总览、村、户、核对纸质件、导入表格）。

    \b
    archive-builder serve households_sample --open
    按 Ctrl+C 停止服务。
    """
    from .web.serve import ServeOptions, run

    def started(lines: list[str]) -> None:
        for text in lines:
            click.echo(text)

    options = ServeOptions(data=data, out=out, host=host, port=port, open_browser=open_browser, token=token)
    for line in run(options, started=started):
        click.echo(line, err=True)
    return ExitCode.ok


@main.group("users", cls=ArchiveGroup)
def users_group() -> None:
    """网页服务的账号：添加、列出、删除（账号保存在输出目录的 users.json 中）。

    \b
    archive-builder users add 张三 --role 村文书 --village 李庄村 -d households_sample
    角色：档案员（全部操作）、村文书（只能修改所管村）、检查员（只读）。
    """


def _users_out(data: Path | None, out: Path | None) -> Path:
    if out is not None:
        return out
    folder = data or Path.cwd()
    if not (folder / "archive.toml").is_file():
        from .errors import DataDirError

        raise DataDirError("请用 -d 指定数据目录（或用 -o 指定输出目录）",
                           hint="例如 archive-builder users add 张三 --role 村文书 --village 李庄村 -d households_sample")
    return api.output_folder(folder)


USERS_DATA = click.option("-d", "--data", type=click.Path(path_type=Path, file_okay=False), default=None,
                          metavar="数据目录", help="数据目录（账号保存在它的输出目录中）")
USERS_OUT = click.option("-o", "--output", "out", type=click.Path(path_type=Path, file_okay=False), default=None,
                         metavar="输出目录", help="输出目录（默认：数据目录的输出目录）")


@users_group.command("add")
@click.argument("name", metavar="账号名")
@click.option("--role", required=True, type=click.Choice(["档案员", "村文书", "检查员"]), metavar="角色",
              help="档案员、村文书 或 检查员")
@click.option("--village", "villages", multiple=True, metavar="村", help="村文书所管的村（村名或村代码，可重复）")
@click.option("--password-stdin", is_flag=True, help="从标准输入读取密码（供脚本使用）")
@USERS_DATA
@USERS_OUT
def users_add(name: str, role: str, villages: tuple[str, ...], password_stdin: bool, data: Path | None,
              out: Path | None) -> ExitCode:
    """添加账号（已有同名账号时更新其角色、村和密码）。"""
    from .web import accounts

    target = _users_out(data, out)
    known = None
    folder = data or (Path.cwd() if (Path.cwd() / "archive.toml").is_file() else None)
    if folder is not None and villages:
        known = api.village_names(folder)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("密码", hide_input=True, confirmation_prompt="再次输入密码")
    account = accounts.add(target, name, role, villages, password, known_villages=known)
    where = f"，所管村：{'、'.join(account.villages)}" if account.villages else ""
    click.echo(f"已添加账号 {account.name}（{account.role}{where}），保存在 {accounts.users_path(target)}")
    return ExitCode.ok


@users_group.command("list")
@USERS_DATA
@USERS_OUT
def users_list(data: Path | None, out: Path | None) -> ExitCode:
    """列出账号。"""
    from .web import accounts

    found = accounts.load(_users_out(data, out))
    if not found:
        click.echo("还没有账号：本机使用（127.0.0.1）时不需要账号。")
    for account in found.values():
        click.echo(f"{account.name}\t{account.role}\t{'、'.join(account.villages)}")
    return ExitCode.ok


@users_group.command("remove")
@click.argument("name", metavar="账号名")
@USERS_DATA
@USERS_OUT
def users_remove(name: str, data: Path | None, out: Path | None) -> ExitCode:
    """删除账号。"""
    from .web import accounts

    accounts.remove(_users_out(data, out), name)
    click.echo(f"已删除账号 {name}")
    return ExitCode.ok


@main.command("audit")
@click.argument("data", type=DATA_DIR)
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), metavar="台账文件",
              help="写出问题台账 .xlsx 文件（每村一个工作表，另有汇总表），如 台账.xlsx")
@click.option("--rules", "rules", type=click.Path(path_type=Path), multiple=True, metavar="规则文件",
              help="另加的规则文件（.yaml），在数据目录 rules/ 中的规则之后应用，可重复")
@click.option("--previous", type=click.Path(path_type=Path), metavar="上一轮台账",
              help="上一轮的台账 .xlsx：保留整改状态和备注，标出新增、仍未整改、已整改")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出到标准输出，供脚本使用")
@click.option("--pdf", "pdf", type=click.Path(path_type=Path), metavar="PDF文件",
              help="另存可打印的问题台账 .pdf 文件，如 台账.pdf")
@click.option("--village", "villages", multiple=True, help="只检查这个村（村代码或村名，可重复）")
@click.option("--today", type=DAY, hidden=True, help="按这一天计算整改时限（测试用）")
@click.pass_obj
def audit_cmd(opts: Options, data: Path, out: Path | None, rules: tuple[Path, ...], previous: Path | None,
              as_json: bool, pdf: Path | None, villages: tuple[str, ...], today: date | None) -> ExitCode:
    """按政策规则检查数据目录（两不愁三保障、收入、程序、帮扶措施、佐证材料、监测），生成问题台账。

    规则：内置全国通用规则，加上数据目录 rules/*.yaml 中县里增加、修改或停用的规则。

    退出码：0 没有「严重」问题；1 有「严重」问题；2 数据目录、规则文件或上一轮台账无法使用；4 台账文件无法写出。
    """
    # before the audit, which takes a while: a wrong place for the ledger is said at once
    if out is not None:
        api.check_ledger_path(out, data)
    if pdf is not None:
        api.check_ledger_path(pdf, data, as_pdf=True)
    result = api.audit(data, rules=rules, previous=previous, today=today,
                       villages=villages)
    for text in result.rule_errors:
        click.echo(f"规则出错：{text}", err=True)
    for hid, reason in result.skipped:
        if not opts.quiet:
            click.echo(f"未检查：户 {hid}：{reason}（请先运行 archive-builder validate 修正）", err=True)
    if out is not None:
        click.echo(f"台账：{api.write_ledger(result, out)}", err=as_json)
    if pdf is not None:
        click.echo(f"台账 PDF：{api.write_ledger(result, pdf, as_pdf=True, data_dir=data)}", err=as_json)
    if as_json:
        click.echo(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
    else:
        if not opts.quiet and out is None and pdf is None:
            for row in result.rows:
                where = f"{row.village} {row.household_id} {row.head}".strip()
                click.echo(f"[{row.severity}] {where}：{row.description}")
        click.echo(f"检查 {result.households} 户，{result.line()}")
    return result.exit_code


@main.command("stats")
@click.argument("data", type=DATA_DIR)
@click.option("--village", "villages", multiple=True, help="只统计这个村（村代码或村名，可重复；默认全部）")
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), default=Path("统计.xlsx"), show_default=True,
              metavar="文件", help="输出文件：.xlsx（每张表一个工作表）或 .pdf（含统计图）")
@click.pass_obj
def stats_cmd(opts: Options, data: Path, villages: tuple[str, ...], out: Path) -> ExitCode:
    """按村、村民组统计户数人数（户类型、属性、脱贫状态、监测、风险、致贫原因、三色）、帮扶措施、收入和“三保障”。"""
    result = api.stats(data, out, villages=villages)
    _echo_problems(list(result.stats.problems), quiet=opts.quiet)
    written = result.output
    for text in written.warnings:
        if not opts.quiet:
            click.echo(f"警告：{text}", err=True)
    unit = "个工作表" if written.kind == "xlsx" else "页"
    click.echo(f"{written.path}\t{written.parts} {unit}")
    return ExitCode.ok


def _id_list(values: tuple[str, ...]) -> list[str]:
    """The 户编号 of a repeatable option, each value holding one or more (comma, 、 or space between)."""
    import re

    return [h for item in values for h in re.split(r"[,，、;；\s]+", item) if h]


@main.command("notice")
@click.argument("data", type=DATA_DIR)
@click.option("--village", required=True, help="村代码或村名")
@click.option("--kind", required=True, type=click.Choice(["识别公示", "退出公示", "监测公示", "公告"]),
              metavar="识别公示|退出公示|监测公示|公告", help="公示种类")
@click.option("--households", multiple=True, metavar="户编号",
              help="只公示这些户：多个户编号用逗号隔开，或重复本选项；默认为公示期内有该种程序记录的户")
@click.option("--from", "start", type=DAY, metavar="日期",
              help="公示开始日期，如 2025-06-02、2025.6.2 或 2025年6月2日（默认：本村最近一次该种公示的日期）")
@click.option("--days", type=int, metavar="天数", help="公示天数（默认：规定的最少天数；监测公示不少于 5 天，识别、退出不少于 7 天）")
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), required=True, metavar="文件",
              help="输出文件：.pdf 或 .docx（可编辑的 Word 文档）")
@click.pass_obj
def notice_cmd(opts: Options, data: Path, village: str, kind: str, households: tuple[str, ...], start: date | None,
               days: int | None, out: Path) -> ExitCode:
    """生成公示、公告（公文格式）：名单不含身份证号码、电话、银行账号和健康状况。"""
    result = api.notice(data, village, kind, out, households=_id_list(households),
                        start=start, days=days)
    for text in result.warnings:
        if not opts.quiet:
            click.echo(f"警告：{text}", err=True)
    plan = result.plan
    pages = f"\t{result.pages} 页" if result.pages is not None else ""
    click.echo(f"{result.path}{pages}")
    click.echo(f"{plan.kind.name}：{len(plan.rows)} 户，{plan.start} 至 {plan.end}（{plan.days} 天）")
    return ExitCode.ok


@main.command("help")
@click.argument("topic", required=False)
@click.option("--path", "show_path", is_flag=True, help="只显示说明文件的位置（可用编辑器或浏览器打开）")
@click.pass_context
def help_cmd(ctx: click.Context, topic: str | None, show_path: bool) -> ExitCode:
    """显示说明文档：数据格式、模板（随程序安装，无需另外下载）。

    \b
    archive-builder help 数据格式
    archive-builder help 模板 --path
    """
    from .manual import TOPICS, topic_path

    if topic is None:
        click.echo("可看的说明（archive-builder help 主题）：")
        for name, (file, what) in TOPICS.items():
            click.echo(f"  {name}\t{what}")
            click.echo(f"  \t{topic_path(name)}")
        return ExitCode.ok
    path = topic_path(topic)
    click.echo(str(path) if show_path else path.read_text(encoding="utf-8"))
    return ExitCode.ok


def entry() -> None:
    """The ``archive-builder`` console script: run the command, then end the process at once.

    Python frees every object before a process ends; after a build that is a noticeable wait
    (parsed records, font tables) once the work was done and the results printed. Everything
    is written and closed by then (atomic writes, the worker pool shut down, SQLite commits
    durable), so after flushing stdout and stderr the process ends with ``os._exit`` and the
    command's exit code. An exception click did not turn into an exit code ends normally.
    """
    import os

    try:
        main(prog_name="archive-builder")
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            raise
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (e.g. `| head`): nothing more to say
            pass
    os._exit(code)
