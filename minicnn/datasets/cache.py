"""Where downloaded datasets are kept, and how files get there safely."""

import os
import tempfile
from pathlib import Path

from .. import config


def dataset_cache_dir(name):
    """The cache folder of one dataset, e.g. ~/.cache/minicnn/datasets/mnist."""
    return config.cache_root() / "datasets" / name


def write_atomic(path, data):
    """Write `data` to `path` so that `path` is either absent or complete.

    The bytes go to a temporary file in the same folder (same filesystem,
    so the final rename is atomic), are flushed to disk, then renamed over
    `path`. If anything fails or is interrupted, the temporary file is
    removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())  # data on disk before the rename makes it visible
        os.chmod(tmp_name, 0o644)  # mkstemp makes it 0600; a cache may be shared
        os.replace(tmp_name, path)
    except BaseException:  # KeyboardInterrupt included: never leave the .part behind
        Path(tmp_name).unlink(missing_ok=True)
        raise
