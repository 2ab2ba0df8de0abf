"""Where files are: the repository's own files from any working directory, and atomic writes.

Every file the project writes goes through `atomic_write`: a temp file in the target folder, then a
rename, so that a crash never leaves half a file. `tempfile.mkstemp` creates its file -rw-------;
`atomic_write` gives the result the permissions of any new file (0o666 minus the umask: 0644 under
umask 022), so that other users and servers can read the results.
"""
import os
import tempfile
from pathlib import Path

from utils.errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[1]


def repo_path(relative) -> Path:
    """A file that ships with the repository (default data, the shipped model), from any working directory."""
    return REPO_ROOT / relative


def file_sha256(path) -> str:
    """The hex SHA-256 of a file's bytes (what a two-stage generator's config records of its first stage)."""
    import hashlib
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stored_path(path) -> str:
    """How a config records a file: relative to the repository when inside it (a clone elsewhere finds it),
    else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def check_writable_folder(folder, flag: str) -> None:
    """InputError naming `flag` unless `folder` can be made or written, checked before any work: a temp folder is
    made and removed in its nearest existing ancestor (the real write test: as root, os.access says yes to
    /proc), so nothing is left behind and a missing `folder` is not created yet."""
    folder = Path(folder).absolute()  # no expanduser: the writers do not expand a literal ~ either
    ancestor = folder
    # lexists: a dangling link counts (it cannot be made into a folder), and a path under a folder that may not be
    # entered reads as missing (Path.exists would raise), so the test below names that folder.
    while not os.path.lexists(ancestor):
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(f"{flag} {folder}: {ancestor} is not a folder (a file or a broken link); pass another {flag}")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".write_test_", dir=ancestor))
    except OSError as exc:
        raise InputError(f"{flag} {folder}: cannot write in {ancestor} ({exc.strerror}); pass another {flag}") \
            from None


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, write, flag: str = None) -> Path:
    """Write `path` by calling write(temp_path) on a temp file beside it, then renaming it over `path`.

    Creates the missing parent folders. A path that cannot be written (a parent is a file, no
    permission, a folder in the way) raises InputError naming it (and `flag` when the user gave it).
    """
    path = Path(path)
    where = f"{flag} {path}" if flag else str(path)
    if path.is_dir():
        raise InputError(f"cannot write {where}: it is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        blocker = next((p for p in path.parents if p.exists()), None)
        reason = f"{blocker} is a file, not a folder" if blocker is not None and not blocker.is_dir() else \
            exc.strerror or str(exc)
        raise InputError(f"cannot write {where}: {reason}") from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_text_atomic(text: str, path) -> Path:
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    return atomic_write(path, write)


def check_checkpoint_path(path, flag: str = None) -> Path:
    """`path` as a Path if it is a file, else InputError (naming `flag` when given): the checks a checkpoint gets
    before it is read (utils/checkpoint.load_checkpoint, which serves every script and so names no flag), and
    before torch is imported (utils/cli.check_input_files)."""
    path = Path(path)
    hint = f" (check {flag})" if flag else ""
    if path.is_dir():
        raise InputError(f"{path} is a folder, not a checkpoint file{hint}")
    if not path.is_file():
        raise InputError(f"checkpoint not found: {path}{hint}")
    return path
