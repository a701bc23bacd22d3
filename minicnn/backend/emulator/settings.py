"""The emulator's options: launch keywords, else the MINICNN_EMU_* settings.

A keyword argument of a launch (``order=``, ``seed=``, ``timeout=``) wins
over the setting (:mod:`minicnn.config`, which documents each and checks its
value); both are parsed by the same rule, so a bad value raises a ValueError
naming where it came from, the value received and what is expected.

Example::

    >>> with config.override(MINICNN_EMU_ORDER="random"):
    ...     launch_order(None)
    'random'
    >>> launch_timeout("abc")
    Traceback (most recent call last):
    ValueError: timeout='abc' is invalid: the time limit must be a number of seconds >= 0 (0 = no time limit)
"""
from ... import config

ORDERS = ("forward", "reverse", "random")

_CXX_RULE = "it must be a C++20 compiler command that runs, such as g++ or g++-12"


def _option(name, value, keyword):
    """The keyword's value when given, else the setting's."""
    if value is None:
        return config.get(name)
    return config.parse(name, value, keyword)


def launch_order(order):
    """The thread order of a launch: ``order=`` or $MINICNN_EMU_ORDER, default 'forward'."""
    return _option("MINICNN_EMU_ORDER", order or None, "order")


def launch_seed(seed):
    """The seed of the random order: ``seed=`` or $MINICNN_EMU_SEED, default 0."""
    return _option("MINICNN_EMU_SEED", seed, "seed")


def launch_timeout(timeout):
    """Seconds before a launch counts as hung: ``timeout=`` or $MINICNN_EMU_TIMEOUT,
    default 60; 0 means no limit."""
    return _option("MINICNN_EMU_TIMEOUT", timeout, "timeout")


def guard_enabled():
    """Whether arrays travel in guarded copies ($MINICNN_EMU_GUARD, default 1)."""
    return config.get("MINICNN_EMU_GUARD")


def compiler():
    """The C++ compiler command: $MINICNN_EMU_CXX, default g++."""
    return config.get("MINICNN_EMU_CXX")


def compiler_from_env(cxx):
    """Whether the command ``cxx`` is the one $MINICNN_EMU_CXX names."""
    return config.raw("MINICNN_EMU_CXX") == cxx


def bad_compiler(cxx, reason):
    """The ValueError for a $MINICNN_EMU_CXX that does not run (``reason``: why)."""
    return config.invalid("MINICNN_EMU_CXX", cxx, f"{_CXX_RULE} (running `{cxx} --version` failed: {reason})")
