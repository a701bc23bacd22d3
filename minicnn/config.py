"""Every ``MINICNN_*`` setting, in one place: name, meaning, expected values, default.

The rest of minicnn asks :func:`get` and never reads a ``MINICNN_*`` variable itself.
A value is parsed when it is asked for, from the variable's current text
(parsed once per text: a value that does not change costs a dict lookup),
and a value that does not parse raises a ValueError that names the variable,
the value and what is expected. An unset or empty variable means the default.

Tests (and programs) change settings with :func:`override`, never by
patching module constants::

    >>> from minicnn import config
    >>> with config.override(MINICNN_NUM_THREADS=1):
    ...     config.get("MINICNN_NUM_THREADS")
    1

``python -m minicnn.config`` prints the table below with each current value.
"""
import contextlib
import math
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any          # the value when the variable is unset or empty
    parse: Callable       # text -> value; raises ValueError(rule) when the text does not parse
    expected: str         # what the variable may hold, for messages and the table
    doc: str              # what it does


def invalid(source, value, rule):
    """The ValueError for a bad setting: '<source>=<value> is invalid: <rule>'."""
    return ValueError(f"{source}={value!r} is invalid: {rule}")


# ----------------------------------------------------------------------------
# parsers (text -> value); each raises ValueError(rule) for text it refuses
# ----------------------------------------------------------------------------
def _choice(*choices, what="it"):
    def parse(text):
        if text not in choices:
            raise ValueError(f"{what} must be one of " + ", ".join(repr(c) for c in choices))
        return text
    return parse


def _flag(rule="it must be 1 (on) or 0 (off)"):
    def parse(text):
        if text not in ("0", "1"):
            raise ValueError(rule)
        return text == "1"
    return parse


def _positive_int(text):
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError("it must be a positive integer")
    return n


def _seed(text):
    try:
        n = int(text)
    except ValueError:
        n = -1
    if not 0 <= n < 2**64:
        raise ValueError("the seed must be an integer from 0 to 2**64-1")
    return n


def _seconds(allow_zero, rule):
    def parse(text):
        try:
            s = float(text)
        except ValueError:
            s = math.nan
        if not (math.isfinite(s) and (s >= 0 if allow_zero else s > 0)):  # nan fails both
            raise ValueError(rule)
        return s
    return parse


def _path(text):
    return os.path.expanduser(text)


def _text(text):
    return text


def is_url_base(url):
    """Whether ``url`` can be a download base: http(s) with a host, or file."""
    try:
        parts = urlsplit(url)
        parts.port  # raises ValueError for a port that is not a number
    except ValueError:  # e.g. an unclosed "[" of an IPv6 address
        return False
    if parts.query or parts.fragment:  # file names are appended to the base
        return False
    scheme = parts.scheme.lower()
    if scheme == "file":
        return bool(parts.path)
    # A host is required: "localhost:8000/mnist" parses as scheme "localhost".
    return scheme in ("http", "https") and bool(parts.hostname)


def _url_bases(text):
    urls = [u for u in re.split(r"[\s,]+", text) if u]
    for url in urls:
        if not is_url_base(url):
            raise ValueError(f"it must hold http://, https:// or file:// base URLs separated by "
                             f"spaces or commas; {url!r} is not one")
    return tuple(u if u.endswith("/") else u + "/" for u in urls)


# ----------------------------------------------------------------------------
# the settings
# ----------------------------------------------------------------------------
SETTINGS = {s.name: s for s in (
    Setting("MINICNN_BACKEND", None, _choice("numpy", "cupy", "emulator"),
            "numpy, cupy or emulator", "the backend (default: cupy when a GPU is usable, else numpy)"),
    Setting("MINICNN_NUM_THREADS", None, _positive_int, "a positive integer",
            "threads of the CPU ops (default: the CPUs this process may use, at most 8)"),
    Setting("MINICNN_CPU_FAST", True, _flag(), "1 or 0",
            "0: the CPU ops run their readable reference code only"),
    Setting("MINICNN_NUMBA", True, _flag(), "1 or 0",
            "0: no Numba kernels (the NumPy fast paths run); read when the CPU ops first load"),
    Setting("MINICNN_TUNE_MALLOC", True, _flag(), "1 or 0",
            "0: leave glibc's malloc thresholds as they are (by default the CPU runtime fixes them "
            "so that a step's big arrays are reused instead of page-faulted every step)"),
    Setting("MINICNN_NUMBA_GEMM", True, _flag(), "1 or 0",
            "0: the convolutions' GEMMs stay on Python threads instead of Numba's"),
    Setting("MINICNN_DATA_DIR", None, _path, "a folder",
            "datasets are read from here (the MNIST IDX files or mnist.npz; fashion-mnist/, the CIFAR archives inside it)"),
    Setting("MINICNN_CACHE_DIR", None, _path, "a folder",
            "minicnn's cache (default $XDG_CACHE_HOME/minicnn or ~/.cache/minicnn)"),
    Setting("MINICNN_MNIST_MIRROR", (), _url_bases, "http(s):// or file:// base URLs",
            "MNIST mirrors tried before the built-in ones"),
    Setting("MINICNN_DOWNLOAD_BUDGET", 180.0,
            _seconds(False, "it must be a positive number of seconds"),
            "seconds > 0", "time for a whole dataset download, all sources together"),
    Setting("MINICNN_STEP_PLAN", True, _flag(), "1 or 0",
            "0: on the cupy and emulator backends, fit runs every training step eagerly instead of "
            "recording it once per batch shape and replaying it (one CUDA graph per step on a GPU)"),
    Setting("MINICNN_DEVICE_DATA", True, _flag(), "1 or 0",
            "0: on the cupy and emulator backends, fit copies each batch from the host instead of "
            "keeping the training set on the device (when it fits) and gathering batches there"),
    Setting("MINICNN_DIST_TIMEOUT", 60.0,
            _seconds(True, "the time limit must be a number of seconds >= 0 (0 = no time limit)"),
            "seconds >= 0", "seconds a distributed worker waits for the others in one exchange before "
            "it ends the job, naming the ranks that did not answer (0: no limit)"),
    Setting("MINICNN_EMU_ORDER", "forward",
            _choice("forward", "reverse", "random", "all", what="the thread order"),
            "forward, reverse, random or all",
            "the order the emulator runs a block's threads in ('all' runs each and compares)"),
    Setting("MINICNN_EMU_SEED", 0, _seed, "an integer from 0 to 2**64-1",
            "the seed of the emulator's random thread order"),
    Setting("MINICNN_EMU_TIMEOUT", 60.0,
            _seconds(True, "the time limit must be a number of seconds >= 0 (0 = no time limit)"),
            "seconds >= 0", "seconds before an emulator launch counts as hung (0: no limit)"),
    Setting("MINICNN_EMU_GUARD", True, _flag("it must be 1 (guard pages, the default) or 0 (none)"), "1 or 0",
            "0: the emulator passes arrays as they are, without guard pages"),
    Setting("MINICNN_EMU_CXX", "g++", _text, "a C++20 compiler command",
            "the compiler the emulator builds kernels with"),
)}

_overrides = {}                # name -> value, set by override()
_parsed = {}                   # (name, text) -> value
_lock = threading.Lock()


def raw(name):
    """The variable's text, or None when it is unset or empty (both mean the default)."""
    _setting(name)
    text = os.environ.get(name)
    return text.strip() if text is not None and text.strip() else None


def get(name):
    """The value of setting ``name``: an override, else the variable parsed, else the default."""
    setting = _setting(name)
    if name in _overrides:
        return _overrides[name]
    text = raw(name)
    if text is None:
        return setting.default
    key = (name, text)
    if key not in _parsed:
        try:
            value = setting.parse(text)
        except ValueError as e:
            raise invalid(name, os.environ.get(name), str(e)) from None
        with _lock:
            _parsed[key] = value
    return _parsed[key]


def parse(name, value, source):
    """``value`` (text or a number, e.g. a keyword argument) parsed as setting ``name``
    would be; a ValueError names ``source`` (the keyword) when it does not parse."""
    try:
        return _setting(name).parse(str(value).strip())
    except ValueError as e:
        raise invalid(source, value, str(e)) from None


@contextlib.contextmanager
def override(**values):
    """Within the block, ``get(name)`` returns the given values (None: the default).

    Example: ``with config.override(MINICNN_NUM_THREADS=1): ...``."""
    for name in values:
        _setting(name)
    saved = {n: _overrides[n] for n in values if n in _overrides}
    with _lock:
        for name, value in values.items():
            _overrides[name] = SETTINGS[name].default if value is None else value
    try:
        yield
    finally:
        with _lock:
            for name in values:
                _overrides.pop(name, None)
            _overrides.update(saved)


def _setting(name):
    try:
        return SETTINGS[name]
    except KeyError:
        raise KeyError(f"no setting {name!r}; the settings are {sorted(SETTINGS)}") from None


def cache_root():
    """minicnn's cache folder: $MINICNN_CACHE_DIR, else $XDG_CACHE_HOME/minicnn,
    else ~/.cache/minicnn (the XDG default, also fine on macOS and Windows)."""
    chosen = get("MINICNN_CACHE_DIR")
    if chosen:
        return Path(chosen)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "minicnn"


def table():
    """The settings as text lines: name, expected values, default, what it does."""
    lines = []
    for s in SETTINGS.values():
        default = "-" if s.default in (None, ()) else s.default
        lines.append(f"{s.name:24} {s.expected:34} default {default}: {s.doc}")
    return lines


if __name__ == "__main__":
    for line in table():
        print(line)
