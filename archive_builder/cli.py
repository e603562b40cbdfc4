"""The ``archive-builder`` command line: parse, call one core function, print, exit.

Adding a command is adding one function at the end of this file::

    @main.command("packet")
    @click.argument("data", type=DATA_DIR)
    @click.pass_obj
    def packet(opts: Options, data: Path) -> ExitCode:
        \"\"\"生成一户的档卡。\"\"\"
        from .packet import make_packet   # lazy: start-up stays fast

        result = make_packet(data)
        ...
        return ExitCode.ok

The core raises ``ArchiveError`` subclasses; ``ArchiveGroup.invoke`` is the one place that
turns them into ``类型：说明`` on stderr and their exit code, so commands never catch them.
A command returns an ``ExitCode`` (None means ok). Help texts are Chinese.
"""

from __future__ import annotations

import json
import sys
import traceback
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import ArchiveError, ExitCode


@dataclass(frozen=True)
class Options:
    """Global options, available to every command through ``@click.pass_obj``."""

    verbose: int = 0
    quiet: bool = False


# --- Chinese help ----------------------------------------------------------------------------


class _ChineseHelp:
    """Chinese headings and help-option text for click's help pages."""

    def get_help_option(self, ctx: click.Context) -> click.Option | None:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.help = "显示本帮助并退出"
        return option  # type: ignore[no-any-return]

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        pieces = self.collect_usage_pieces(ctx)  # type: ignore[attr-defined]
        formatter.write_usage(ctx.command_path, " ".join(pieces), prefix="用法：")

    def format_options(
        self, ctx: click.Context, formatter: click.HelpFormatter
    ) -> None:
        records = [r for p in self.get_params(ctx) if (r := p.get_help_record(ctx))]  # type: ignore[attr-defined]
        if records:
            with formatter.section("选项"):
                formatter.write_dl(records)
        if isinstance(self, click.Group):
            self._format_commands(ctx, formatter)

    def _format_commands(
        self, ctx: click.Context, formatter: click.HelpFormatter
    ) -> None:
        assert isinstance(self, click.Group)
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=60)))
        if rows:
            with formatter.section("命令"):
                formatter.write_dl(rows)


class ArchiveCommand(_ChineseHelp, click.Command):
    """A command with Chinese help."""


class ArchiveGroup(_ChineseHelp, click.Group):
    """The command group; its ``invoke`` is the single error boundary of the program."""

    command_class = ArchiveCommand

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
        except (
            click.exceptions.ClickException,
            click.exceptions.Exit,
            click.exceptions.Abort,
        ):
            raise
        except ArchiveError as exc:
            _print_error(ctx, exc)
            ctx.exit(int(exc.exit_code))
        except KeyboardInterrupt:
            click.echo("已中断", err=True)
            ctx.exit(int(ExitCode.interrupted))
        except Exception as exc:  # noqa: BLE001 - the boundary: anything else is a bug
            _print_internal(ctx, exc)
            ctx.exit(int(ExitCode.internal))
        if isinstance(result, int) and result:
            ctx.exit(int(result))
        return result


def _verbose(ctx: click.Context) -> bool:
    opts = ctx.find_object(Options)
    return bool(opts and opts.verbose)


def _print_error(ctx: click.Context, exc: ArchiveError) -> None:
    if _verbose(ctx):
        click.echo(traceback.format_exc(), err=True)
    click.echo(f"{exc.kind}：{exc.message}", err=True)
    if exc.hint:
        click.echo(f"提示：{exc.hint}", err=True)


def _print_internal(ctx: click.Context, exc: Exception) -> None:
    if _verbose(ctx):
        click.echo(traceback.format_exc(), err=True)
    click.echo(f"内部错误：{type(exc).__name__}: {exc}", err=True)
    click.echo(
        "这是 archive-builder 的缺陷，不是您的数据问题。请报告：附上这段信息和加 -v 运行时的输出。",
        err=True,
    )


def _tolerant_streams() -> None:
    # A Windows console or a pipe in GBK cannot encode every name (𠮷): never die on output.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and (
            getattr(stream, "encoding", "") or ""
        ).lower() not in ("utf-8", "utf8"):
            try:
                reconfigure(errors="replace")
            except (ValueError, OSError):
                pass


#: the data directory argument of every command (existence is checked by the core, in Chinese)
DATA_DIR = click.Path(path_type=Path, file_okay=True, dir_okay=True)


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

    先用 validate 检查数据目录，再生成档卡。数据格式见 record-format.md。
    """
    _tolerant_streams()
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
    type=click.DateTime(["%Y-%m-%d"]),
    hidden=True,
    help="按这一天检查「日期不晚于今天」（测试用）",
)
@click.pass_obj
def validate(
    opts: Options, data: Path, strict: bool, as_json: bool, today: Any
) -> ExitCode:
    """检查数据目录 DATA：格式、身份证号码、必填项、佐证材料等。

    退出码：0 没有问题；1 有错误（--strict 时警告也算）；2 数据目录无法使用。
    """
    from .validate import check_data_dir, format_report

    day: date | None = today.date() if today else None
    report = check_data_dir(data, strict=strict, today=day)
    if as_json:
        click.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        click.echo(format_report(report, quiet=opts.quiet))
    return ExitCode.problems if report.summary.errors else ExitCode.ok
