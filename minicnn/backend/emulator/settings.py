"""The emulator's options: launch keywords and MINICNN_EMU_* environment variables.

A keyword argument of a launch (``order=``, ``seed=``, ``timeout=``) wins
over the variable; an unset or empty variable means the default. Each is
read when used (every launch, every build) and checked: a value that does
not parse raises ValueError naming where it came from, the value received
and what is expected, instead of a bare ``could not convert string to
float`` or a silent misreading.

=====================  ===========================================  =========
variable               expected                                     default
=====================  ===========================================  =========
MINICNN_EMU_ORDER      forward, reverse, random or all              forward
MINICNN_EMU_SEED       an integer from 0 to 2**64-1                 0
MINICNN_EMU_TIMEOUT    seconds >= 0 (0 = no time limit)             60
MINICNN_EMU_GUARD      1 (guard pages) or 0 (arrays passed as-is)   1
MINICNN_EMU_CXX        a C++20 compiler command                     g++
=====================  ===========================================  =========

Example::

    >>> os.environ["MINICNN_EMU_TIMEOUT"] = "abc"
    >>> launch_timeout(None)
    Traceback (most recent call last):
    ValueError: MINICNN_EMU_TIMEOUT='abc' is invalid: the time limit must be a number of seconds >= 0 (0 = no time limit)
"""
import math
import operator
import os

ORDERS = ("forward", "reverse", "random")

_ORDER_RULE = "the thread order must be one of 'forward', 'reverse', 'random', 'all'"
_SEED_RULE = "the seed must be an integer from 0 to 2**64-1"
_TIMEOUT_RULE = "the time limit must be a number of seconds >= 0 (0 = no time limit)"
_GUARD_RULE = "it must be 1 (guard pages, the default) or 0 (none)"
_CXX_RULE = "it must be a C++20 compiler command that runs, such as g++ or g++-12"


def invalid(source, value, rule):
    """The ValueError for a bad option: '<source>=<value> is invalid: <rule>'."""
    return ValueError(f"{source}={value!r} is invalid: {rule}")


def env_value(name):
    """The variable's text, or None when it is unset or empty (both mean the default)."""
    raw = os.environ.get(name)
    return raw if raw is not None and raw.strip() else None


def _option(value, var):
    """(where the option comes from, its value): the keyword when given, else the
    variable (value None when neither is set)."""
    if value is not None:
        return None, value
    return var, env_value(var)


# ----------------------------------------------------------------------------
# Launch options
# ----------------------------------------------------------------------------
def launch_order(order):
    """The thread order of a launch: ``order=`` or $MINICNN_EMU_ORDER, default 'forward'."""
    source, value = _option(order or None, "MINICNN_EMU_ORDER")
    if value is None:
        return "forward"
    text = value.strip() if source else value
    if text not in (*ORDERS, "all"):
        raise invalid(source or "order", value, _ORDER_RULE)
    return text


def launch_seed(seed):
    """The seed of the random order: ``seed=`` or $MINICNN_EMU_SEED, default 0."""
    source, value = _option(seed, "MINICNN_EMU_SEED")
    if value is None:
        return 0
    n = _as_int(value)
    if n is None or not 0 <= n < 2**64:
        raise invalid(source or "seed", value, _SEED_RULE)
    return n


def _as_int(value):
    """An int from text or an integer type, else None: floats are refused,
    since int(1.5) would quietly give 1 (int('1.5') fails, as it should)."""
    try:
        return int(value) if isinstance(value, str) else operator.index(value)
    except (TypeError, ValueError):
        return None


def launch_timeout(timeout):
    """Seconds before a launch counts as hung: ``timeout=`` or $MINICNN_EMU_TIMEOUT,
    default 60; 0 means no limit."""
    source, value = _option(timeout, "MINICNN_EMU_TIMEOUT")
    if value is None:
        return 60.0
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):  # nan fails every comparison
        raise invalid(source or "timeout", value, _TIMEOUT_RULE)
    return seconds


def guard_enabled():
    """Whether arrays travel in guarded copies ($MINICNN_EMU_GUARD, default 1)."""
    value = env_value("MINICNN_EMU_GUARD")
    if value is None:
        return True
    if value.strip() not in ("0", "1"):
        raise invalid("MINICNN_EMU_GUARD", value, _GUARD_RULE)
    return value.strip() == "1"


# ----------------------------------------------------------------------------
# Build options
# ----------------------------------------------------------------------------
def compiler():
    """The C++ compiler command: $MINICNN_EMU_CXX, default g++."""
    value = env_value("MINICNN_EMU_CXX")
    return value.strip() if value is not None else "g++"


def compiler_from_env(cxx):
    """Whether the command ``cxx`` is the one $MINICNN_EMU_CXX names."""
    value = env_value("MINICNN_EMU_CXX")
    return value is not None and value.strip() == cxx


def bad_compiler(cxx, reason):
    """The ValueError for a $MINICNN_EMU_CXX that does not run (``reason``: why)."""
    return invalid("MINICNN_EMU_CXX", cxx, f"{_CXX_RULE} (running `{cxx} --version` failed: {reason})")
