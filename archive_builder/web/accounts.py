"""Accounts of the web app: who may do what, when it is served beyond one PC.

The accounts live in ``OUT/users.json`` (the output folder, beside the version store), with
argon2 password hashes (argon2-cffi). Roles:

- 档案员: everything;
- 村文书: read everything; edit, upload evidence and regenerate only the households of the
  villages given with ``--village`` (name or code); build only those villages;
- 检查员: read, compare, verify; no change of any kind.

Without the file (or with no account in it) the app works as before: on the loopback address
anyone at the PC is 档案员 and names themselves for the edit journal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ArchiveError, ExitCode

USERS_FILE = "users.json"
ROLES = ("档案员", "村文书", "检查员")


class AccountError(ArchiveError):
    exit_code = ExitCode.input_unusable
    kind = "账号设置有误"


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    villages: tuple[str, ...] = ()
    password_hash: str = field(default="", repr=False)

    @property
    def can_edit_anything(self) -> bool:
        return self.role == "档案员"

    @property
    def read_only(self) -> bool:
        return self.role == "检查员"

    def may_edit(self, village_code: str, village_name: str) -> bool:
        """Whether this account may change a household of that village."""
        if self.role == "档案员":
            return True
        if self.role == "村文书":
            return village_code in self.villages or village_name in self.villages
        return False


#: the account of loopback use without accounts (the journal name comes from the form)
LOCAL = Account("", "档案员")


def _hasher() -> Any:
    from argon2 import PasswordHasher

    return PasswordHasher()


def users_path(out_dir: Path) -> Path:
    return Path(out_dir) / USERS_FILE


def load(out_dir: Path) -> dict[str, Account]:
    """The accounts of an output folder (empty without the file)."""
    from ..archive.outdir import read_json

    path = users_path(out_dir)
    if not path.is_file():
        return {}
    data = read_json(path, None)
    if not isinstance(data, dict) or not isinstance(data.get("users"), list):
        raise AccountError(f"账号文件 {path} 已损坏，无法读取", hint="请从备份恢复，或删除后用 archive-builder users add 重新添加账号")
    found = {}
    for item in data["users"]:
        if isinstance(item, dict) and item.get("role") in ROLES and item.get("name"):
            found[str(item["name"])] = Account(str(item["name"]), str(item["role"]),
                                               tuple(str(v) for v in item.get("villages") or ()),
                                               str(item.get("password_hash") or ""))
    return found


def _save(out_dir: Path, accounts: dict[str, Account]) -> None:
    from ..archive.outdir import atomic_write_json

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_json(users_path(out_dir), {"users": [
        {"name": a.name, "role": a.role, "villages": list(a.villages), "password_hash": a.password_hash}
        for a in accounts.values()]})


def add(out_dir: Path, name: str, role: str, villages: tuple[str, ...], password: str,
        known_villages: list[tuple[str, str]] | None = None) -> Account:
    """Add (or replace) one account; ``known_villages`` [(code, name)] checks ``villages``."""
    name = name.strip()
    if not name:
        raise AccountError("账号名不能为空", hint="例如 archive-builder users add 张三 --role 村文书 --village 李庄村")
    if role not in ROLES:
        raise AccountError(f"没有这个角色：{role}", hint="角色为 档案员、村文书 或 检查员")
    if role == "村文书" and not villages:
        raise AccountError("村文书账号必须指定所管的村", hint="加上 --village 村名（可重复）")
    if known_villages is not None:
        names = {n for pair in known_villages for n in pair}
        unknown = [v for v in villages if v not in names]
        if unknown:
            raise AccountError(f"数据目录中没有这个村：{'、'.join(unknown)}",
                               hint="可用的村：" + "、".join(n for _, n in known_villages))
    if len(password) < 8:
        raise AccountError("密码太短（至少 8 个字符）", hint="请换一个更长的密码")
    accounts = load(out_dir)
    account = Account(name, role, tuple(villages), _hasher().hash(password))
    accounts[name] = account
    _save(out_dir, accounts)
    return account


def remove(out_dir: Path, name: str) -> None:
    accounts = load(out_dir)
    if name not in accounts:
        raise AccountError(f"没有名为 {name} 的账号", hint="用 archive-builder users list 查看已有账号")
    del accounts[name]
    _save(out_dir, accounts)


def check_password(account: Account, password: str) -> bool:
    from argon2.exceptions import Argon2Error

    try:
        return bool(_hasher().verify(account.password_hash, password))
    except (Argon2Error, ValueError, TypeError):
        return False
