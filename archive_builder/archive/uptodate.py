"""Whether a build has nothing to do: the stat signature of everything the last build read and wrote.

The content hashes (record, evidence bytes, template set, fonts, program version) decide what
a build renders. Computing them needs every record parsed and validated, which is most of a
no-change rebuild's time. Like make, ninja or git's index, this module first compares what
``stat`` says: when every file of the data directory (stamped before the last build read it),
every template, font and evidence file that build used, and every output file it left have
the same size, modification time, change time and inode as then, and the options, the
program version and the day (validation looks at today's date) are the same, the outputs are
what a full run would produce again, and the run ends at once.

Anything else, including a file merely touched, falls through to the normal run, which then
works from the content hashes. The signature is written only after a run that completed with
every household built, and removed before a run changes anything, so a killed or partial run
never leaves one behind. Importing this module is cheap on purpose (no records, no fonts).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .. import __version__

STATE_FILE = ".state/uptodate.json"
_FORMAT = 1
#: entries of OUT that are not outputs: the lock, caches, this file, and the version store
#: (which ``history`` may read; only its catalog's presence is checked)
_OUT_IGNORED = frozenset({".archive-builder.lock", ".cache", ".store", "uptodate.json"})
_STORE_CATALOG = ".store/catalog.sqlite"


def _stamp(st: os.stat_result) -> list[int]:
    if stat.S_ISDIR(st.st_mode):
        # A folder's own times change when anything is renamed into it (this file included);
        # its entries are walked anyway, which is what those times would tell.
        return [0]
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _walk(root: Path, ignored: frozenset[str] = frozenset()) -> Iterable[tuple[str, list[int]]]:
    """(path relative to ``root``, stamp) of ``root`` and everything below it, sorted."""
    try:
        yield "", _stamp(root.stat())
    except OSError:
        yield "", []
        return
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name in ignored:
                continue
            rel = f"{prefix}{entry.name}"
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError:
                yield rel, []
                continue
            yield rel, _stamp(st)
            if entry.is_dir(follow_symlinks=True):
                stack.append((Path(entry.path), rel + "/"))


def _path_stamp(path: str) -> list[int]:
    try:
        return _stamp(os.stat(path))
    except OSError:
        return []


def _env() -> dict[str, str]:
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith("ARCHIVE_BUILDER_")}


#: (path relative to the data directory, its stamp's hash) of everything in it (``walk_data``)
Walked = list[tuple[str, int]]


def walk_data(data_dir: Path) -> Walked:
    """Return the stamp of everything in the data directory: what a run compares (here and in
    :mod:`~archive_builder.archive.known`), taken once, before anything is read. Each stamp is
    kept as its hash (of four integers: the same in every process), a third of the memory a
    county's 120,000 stamps took as lists."""
    return [(rel, hash(tuple(stamp))) for rel, stamp in _walk(data_dir)]


def data_digest(data_dir: Path, walked: Walked | None = None) -> str:
    """Return the digest of the stamps of everything in the data directory (``walked``: as
    ``walk_data`` returned them, else walked now).

    A run takes it before reading anything, so a file edited while the run reads the data
    leaves a signature that no longer matches, and the next run works normally.
    """
    h = hashlib.sha256(str(data_dir).encode("utf-8", "surrogatepass"))
    for rel, stamp in walk_data(data_dir) if walked is None else walked:
        h.update(f"\0{rel}\0{stamp}".encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def inputs_digest(data: str, options: Mapping[str, Any], trees: Iterable[str], files: Iterable[str]) -> str:
    """Return the digest of ``data`` (:func:`data_digest`), the external folders and files, and the settings."""
    h = hashlib.sha256(f"archive-builder uptodate {_FORMAT}\n".encode())
    h.update(json.dumps({
        "version": __version__, "options": options, "env": _env(), "today": _dt.date.today().isoformat(),
        "data": data,
    }, sort_keys=True, ensure_ascii=False, default=str).encode())
    _update_external(h, trees, files)
    return h.hexdigest()


def _update_external(h: Any, trees: Iterable[str], files: Iterable[str]) -> None:
    for tree in sorted(set(trees)):
        for rel, stamp in _walk(Path(tree)):
            h.update(f"T{tree}/{rel}\0{stamp}\n".encode("utf-8", "surrogatepass"))
    for path in sorted(set(files)):
        h.update(f"F{path}\0{_path_stamp(path)}\n".encode("utf-8", "surrogatepass"))


class ExternalWatch:
    """The folders and files outside the data directory that the last run read (templates,
    fonts, evidence kept elsewhere), stamped when this run starts, before it reads any.

    Their stamps go into this run's signatures (``record``, ``known.write``) when the run ends:
    a template edited after the run had read it would be stamped as the version the outputs
    were made from, and the next run would take them as current. ``changed()`` tells whether
    any of them changed during the run; the run then leaves no signature behind. (A folder or
    file this run reads for the first time is stamped when it ends, as before.)
    """

    def __init__(self, trees: Iterable[str], files: Iterable[str]) -> None:
        self.trees, self.files = sorted(set(trees)), sorted(set(files))
        self._before = self._digest()

    def _digest(self) -> str:
        h = hashlib.sha256()
        _update_external(h, self.trees, self.files)
        return h.hexdigest()

    def changed(self) -> bool:
        return bool(self.trees or self.files) and self._digest() != self._before


def watch_external(out_dir: Path, trees: Iterable[str] = (), files: Iterable[str] = ()) -> ExternalWatch:
    """Stamp the folders and files outside the data directory that the last run's signature
    lists, with ``trees`` and ``files`` (those of ``known``'s file)."""
    trees, files = list(trees), list(files)
    try:
        state = json.loads((out_dir / STATE_FILE).read_bytes())
        trees += [str(t) for t in state.get("trees", ())]
        files += [str(f) for f in state.get("files", ())]
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    return ExternalWatch(trees, files)


def outputs_digest(out_dir: Path) -> str:
    h = hashlib.sha256()
    for rel, stamp in _walk(out_dir, _OUT_IGNORED):
        h.update(f"{rel}\0{stamp}\n".encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _options_key(options: Any) -> dict[str, Any]:
    return {
        "villages": sorted(options.villages), "formats": list(options.formats) if options.formats else None,
        "strict": options.strict, "build_date": options.build_date, "template_set": options.template_set,
    }


def check(data_dir: Path, out_dir: Path, options: Any, walked: Walked | None = None) -> dict[str, Any] | None:
    """Return the last run's recorded summary when nothing changed since it, else None
    (``walked``: the data directory's ``walk_data``, else walked here)."""
    if options.force:
        return None
    try:
        state = json.loads((out_dir / STATE_FILE).read_bytes())
        if state.get("format") != _FORMAT:
            return None
        if not (out_dir / _STORE_CATALOG).is_file():  # a removed store is filled again by a normal run
            return None
        inputs = inputs_digest(data_digest(data_dir, walked), _options_key(options), state["trees"], state["files"])
        if inputs != state["inputs"] or outputs_digest(out_dir) != state["outputs"]:
            return None
        return dict(state["summary"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def forget(out_dir: Path) -> None:
    """Remove the signature before a run changes anything."""
    try:
        (out_dir / STATE_FILE).unlink()
    except FileNotFoundError:
        pass


def record(data: str, out_dir: Path, options: Any, *, trees: Iterable[str], files: Iterable[str],
           summary: Mapping[str, Any]) -> None:
    """Store the signature of a run that completed with every household built.

    ``data`` is the :func:`data_digest` taken when the run started.
    """
    from .outdir import atomic_write_json

    trees, files = sorted(set(trees)), sorted(set(files))
    state = {
        "format": _FORMAT,
        "trees": trees,
        "files": files,
        "inputs": inputs_digest(data, _options_key(options), trees, files),
        "summary": dict(summary),
    }
    # (this file itself is left out of the outputs' digest: see _OUT_IGNORED)
    atomic_write_json(out_dir / STATE_FILE, {**state, "outputs": outputs_digest(out_dir)})
