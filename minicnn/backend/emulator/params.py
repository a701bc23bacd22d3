"""Kernel parameters as the compiler sees them, and the argument checks.

CuPy passes a Python int as int64 and a float as float64 whatever the
kernel declares, and takes arrays of any dtype or layout without a word: on
the GPU that is silent garbage. The emulator refuses all of it, naming the
kernel, the argument and what to pass instead.

Example::

    >>> spec = ParamSpec(1, 'n', 'int n', VALUE, np.dtype(np.int32), 4)
    >>> check_arg(spec, 5, "kernel 'k'")
    Traceback (most recent call last):
    TypeError: kernel 'k' argument 1 ('n', C type int): a Python int (5) is refused: pass np.int32(5) ...
"""
from dataclasses import dataclass
from functools import cached_property

import numpy as np

VALUE, POINTER, CONST_POINTER = 0, 1, 2

# Type codes of emu_trampoline.h -> numpy dtype (None: no check possible).
CODE_DTYPES = {
    1: np.bool_, 2: np.int8, 3: np.uint8, 4: np.int16, 5: np.uint16, 6: np.int32,
    7: np.uint32, 8: np.int64, 9: np.uint64, 10: np.float32, 11: np.float64,
}


@dataclass(frozen=True)
class ParamSpec:
    index: int
    name: str
    text: str          # the declaration as written, e.g. 'const float* __restrict__ x'
    kind: int          # VALUE, POINTER or CONST_POINTER
    dtype: object      # np.dtype of the value / pointee, or None (struct, void, ...)
    size: int          # sizeof the value / pointee in bytes (0 for void)

    @property
    def is_pointer(self):
        return self.kind != VALUE

    @cached_property
    def ctype(self):
        """The C type as declared: the declaration without the name ('int', 'const float*')."""
        text = self.text
        if self.name and text.endswith(self.name):
            text = text[:-len(self.name)]
        elif self.name:  # an array parameter: 'float y[]' is a pointer
            text = text[:text.rindex(self.name)] + "*"
        return " ".join(text.replace("__restrict__", "").split()) or self.text

    @cached_property
    def short(self):
        """How messages name it: argument 2 ('n', C type int)."""
        return f"argument {self.index} ('{self.name}', C type {self.ctype})"

    def where(self, label):
        return f"{label} {self.short}"


def specs_from_table(table, parsed):
    """ParamSpecs from the compiler's table {n, 0, kinds, codes, sizes} and parsed Params."""
    n = table[0]
    kinds, codes, sizes = table[2:2 + n], table[2 + n:2 + 2 * n], table[2 + 2 * n:2 + 3 * n]
    out = []
    for i in range(n):
        p = parsed[i] if i < len(parsed) else None
        dtype = CODE_DTYPES.get(codes[i])
        out.append(ParamSpec(i, p.name if p else f"#{i}", p.text if p else f"parameter {i}",
                             kinds[i], np.dtype(dtype) if dtype else None, sizes[i]))
    return out


def numpy_name(dtype):
    return "np.bool_" if dtype == np.bool_ else f"np.{dtype.name}"


def _refuse_python_scalar(spec, value, label):
    if spec.is_pointer:
        hint = "pass a C-contiguous numpy array"
    elif spec.dtype is not None:
        hint = f"pass {numpy_name(spec.dtype)}({value!r})"
    else:
        hint = "pass a numpy scalar of the parameter's exact type"
    raise TypeError(
        f"{spec.where(label)}: a Python {type(value).__name__} ({value!r}) is refused: {hint} "
        "(pass np.int32/np.float32 explicitly; CuPy would send a Python int as int64 and a "
        "float as float64, and the kernel would silently misread it)")


def _check_array(spec, a, label):
    where = spec.where(label)
    if not spec.is_pointer:
        raise TypeError(f"{where}: is passed by value but received an array of {a.dtype}; "
                        "pass a numpy scalar")
    if not a.flags.c_contiguous:
        raise TypeError(f"{where}: the array (shape {a.shape}, strides {a.strides}) is not "
                        "C-contiguous; pass np.ascontiguousarray(a)")
    if spec.dtype is not None and a.dtype != spec.dtype:
        raise TypeError(f"{where}: expects an array of {spec.dtype} ({numpy_name(spec.dtype)}), "
                        f"received {a.dtype}")
    if spec.kind == POINTER and not a.flags.writeable:
        raise TypeError(f"{where}: the pointer is not const (the kernel may write), but the "
                        "array is read-only")


def _check_scalar(spec, v, label):
    where = spec.where(label)
    if spec.is_pointer:
        raise TypeError(f"{where}: expects a pointer (a numpy array) but received the scalar "
                        f"{numpy_name(v.dtype)}({v!r})")
    if spec.dtype is not None and v.dtype != spec.dtype:
        raise TypeError(f"{where}: expects {numpy_name(spec.dtype)}, received "
                        f"{numpy_name(v.dtype)}({v!r})")
    if spec.dtype is None and v.dtype.itemsize != spec.size:
        raise TypeError(f"{where}: expects {spec.size} bytes, received {v.dtype} of "
                        f"{v.dtype.itemsize} bytes")


def check_arg(spec, value, label):
    """Raise TypeError unless ``value`` fits parameter ``spec`` exactly."""
    if isinstance(value, np.ndarray):
        _check_array(spec, value, label)
    elif isinstance(value, np.generic):
        _check_scalar(spec, value, label)
    elif isinstance(value, (bool, int, float, complex)):
        _refuse_python_scalar(spec, value, label)
    else:
        raise TypeError(f"{spec.where(label)}: unsupported argument type "
                        f"{type(value).__module__}.{type(value).__name__}; the emulator takes "
                        "numpy arrays (for pointers) and numpy scalars (for values)")


def check_args(specs, args, label):
    """Check the whole argument tuple against the kernel's parameters."""
    if not isinstance(args, (tuple, list)):
        raise TypeError(f"{label}: args must be a tuple, received {type(args).__name__}")
    if len(args) != len(specs):
        names = ", ".join(s.text for s in specs)
        raise TypeError(f"{label}: takes {len(specs)} arguments ({names}), received {len(args)}")
    for spec, value in zip(specs, args):
        check_arg(spec, value, label)
