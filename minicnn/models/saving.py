"""Weight files: an ``.npz`` of arrays ``w0, w1, ...``, written atomically.

A save writes a temporary file beside the target and renames it over the
target in one step, so a crash (even SIGKILL) leaves either the old file or
the new one, whole. Temporary files are named after the target and the
writing process (``.<name>.tmp-<pid>-<random>``); a later save of the same
target removes those whose process is gone.
"""
import errno
import glob
import os
import secrets
import zipfile

import numpy as np


def save_arrays(filepath, arrays):
    """Write ``arrays`` to ``filepath`` (.npz) atomically, with the umask's permissions.

    Example: ``save_arrays('model.weights.npz', model.get_weights())``."""
    atomic_write(filepath, lambda f: np.savez(f, **{f"w{i}": a for i, a in enumerate(arrays)}),
                 "save_weights")


def atomic_write(filepath, write, where):
    """Call ``write(binary file)`` on a temporary beside ``filepath``, then rename it over
    ``filepath`` in one step: a crash leaves the old file or the new one, whole."""
    filepath = _as_path(filepath, where)
    folder, name = os.path.split(os.path.abspath(filepath))
    _remove_stale_temporaries(folder, name)
    tmp = os.path.join(folder, f".{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        # os.open applies the umask to 0o666, as open() does (mkstemp would give 0600)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as e:
        raise OSError(e.errno, f"{where}: cannot write {filepath!r} ({e.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        os.unlink(tmp)
        raise


def load_arrays(filepath):
    """The arrays of a file written by :func:`save_arrays`, in order.

    Raises a ValueError naming the file when it is not such a file (an
    ``.npy``, a pickle, a truncated or corrupt archive); nothing is unpickled."""
    filepath = _as_path(filepath, "load_weights")
    try:
        f = np.load(filepath, allow_pickle=False)
        if not isinstance(f, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array (.npy), not the .npz archive save_weights writes")
        with f:
            names = [f"w{i}" for i in range(len(f.files))]
            if sorted(f.files) != sorted(names):
                raise ValueError(f"it holds arrays named {sorted(f.files)[:5]}..., not w0, w1, ... "
                                 "as save_weights writes")
            return [f[n] for n in names]
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EISDIR):
            raise
        raise ValueError(f"load_weights: {filepath!r} is not a weights file written by save_weights: "
                         f"{e}") from None


def _as_path(filepath, where):
    """A str path from str, bytes or os.PathLike, else a TypeError."""
    try:
        return os.fsdecode(os.fspath(filepath))
    except TypeError:
        raise TypeError(f"{where}: filepath must be a str, bytes or os.PathLike. "
                        f"Received: filepath={filepath!r}") from None


def _remove_stale_temporaries(folder, name):
    """Delete temporaries of ``name`` left by processes that no longer run (SIGKILL)."""
    for path in glob.glob(os.path.join(glob.escape(folder), glob.escape(f".{name}.tmp-") + "*")):
        pid = os.path.basename(path)[len(name) + 6:].split("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
            try:
                os.unlink(path)
            except OSError:
                pass  # another process cleaned it up first


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's
    return True
