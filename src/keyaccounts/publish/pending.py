"""Files of a publish, written under temporary names while the publish transaction is open
and renamed into place only after it commits: a failure before the commit (a full exports
disk, a killed process) leaves the previous publish's files, the record and the marts as
they were; the renames after the commit cannot run out of space."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable


class PendingFiles:
    def __init__(self) -> None:
        self._moves: list[tuple[Path, Path]] = []
        self._scratch: list[Path] = []  # removed on discard (written, but not renamed)
        self._after: list[Callable[[], None]] = []

    def sweep(self, folder: Path, pattern: str) -> None:
        """Remove temporary files a killed run left (runs are serialised by the run lock), not those
        of this publish (it may write the files of two months)."""
        own = {tmp for tmp, _ in self._moves}
        for stale in folder.glob(pattern):
            if stale not in own and (stale.is_symlink() or stale.is_file()):
                stale.unlink(missing_ok=True)

    def temp_for(self, final: Path) -> Path:
        """A temporary name beside `final` (same file system: the rename is atomic)."""
        tmp = final.with_name(final.name + ".tmp")
        self._moves.append((tmp, final))
        return tmp

    def temp_in(self, folder: Path, name: str, final: Path) -> Path:
        """A temporary file `name` in an existing `folder` (same file system) for a `final` whose
        own folder may not exist yet: the commit creates it, so a failed publish leaves no new folder."""
        tmp = folder / name
        self._moves.append((tmp, final))
        return tmp

    def scratch(self, path: Path) -> Path:
        self._scratch.append(path)
        return path

    def after_commit(self, fn: Callable[[], None]) -> None:
        self._after.append(fn)

    @property
    def finals(self) -> list[Path]:
        return [final for _, final in self._moves]

    def commit(self) -> None:
        for tmp, final in self._moves:
            if tmp.parent != final.parent:
                final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        self._moves.clear()
        for fn in self._after:
            fn()

    def discard(self) -> None:
        """Never leave a half-written file behind."""
        for tmp, _ in self._moves:
            if tmp.is_symlink() or tmp.is_file():
                tmp.unlink(missing_ok=True)
        for path in self._scratch:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        self._moves.clear()


def write_now(write: Callable[[PendingFiles], object]):
    """Run a writer that stages its files, and put them in place at once (no transaction:
    `keyaccounts export` re-writing a month's files)."""
    pending = PendingFiles()
    try:
        out = write(pending)
        pending.commit()
    except BaseException:
        pending.discard()
        raise
    return out
