"""Reading CIFAR's pickled batches without running anything from them.

A CIFAR "python version" batch is a protocol-2 pickle (written by Python 2's
cPickle) of a dict: b'data' -> a uint8 numpy array, b'labels' (or b'fine_labels'
and b'coarse_labels') -> a list of ints, plus a few strings and lists of
strings. pickle.load would import and call whatever the file names; here:

- a pre-scan of the opcodes (pickletools.genops, which executes nothing)
  refuses every opcode that builds objects other than the plain types
  (INST, OBJ, NEWOBJ, EXT*, PERSID, out-of-band buffers, ...), every
  global except the four below, and memo indices that could make the
  unpickler allocate far more than the file's size;
- Unpickler.find_class then hands out stand-ins instead of numpy's own
  functions for numpy.core.multiarray._reconstruct (or numpy._core's),
  numpy.ndarray and numpy.dtype, and a latin-1-only codecs.encode (Python
  3's protocol 2 writes bytes that way). The array stand-in takes the
  pickled state (shape, uint8 dtype, raw bytes) and builds the array with
  np.frombuffer: numpy never sees a state from the file, and only uint8
  arrays can come out.

Anything else raises ValueError naming the file.
"""

import io
import pickle
import pickletools
from math import prod

import numpy as np

ALLOWED_OPCODES = frozenset("""
    PROTO FRAME STOP MARK POP POP_MARK
    NONE NEWTRUE NEWFALSE INT BININT BININT1 BININT2 LONG1 LONG4 FLOAT BINFLOAT
    STRING BINSTRING SHORT_BINSTRING BINBYTES SHORT_BINBYTES BINBYTES8
    UNICODE BINUNICODE SHORT_BINUNICODE BINUNICODE8
    EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3 EMPTY_LIST LIST APPEND APPENDS
    EMPTY_DICT DICT SETITEM SETITEMS
    GLOBAL STACK_GLOBAL REDUCE BUILD
    PUT BINPUT LONG_BINPUT MEMOIZE GET BINGET LONG_BINGET
""".split())
MEMO_OPCODES = frozenset(("PUT", "BINPUT", "LONG_BINPUT"))
UINT8_NAMES = frozenset(("u1", "|u1", "uint8", "B"))


class NdarrayClass:
    """Stands for the global numpy.ndarray: only _reconstruct may take it."""

    __slots__ = ()


class Uint8Dtype:
    """Stands for numpy.dtype('u1'); its pickled state is checked, not applied."""

    __slots__ = ()

    def __setstate__(self, state):
        # (version, byte order, subarray, names, fields, ...): plain uint8 has no
        # subarray, names or fields.
        if not isinstance(state, tuple) or len(state) < 5 or any(s is not None for s in state[2:5]):
            raise pickle.UnpicklingError(f"dtype state {state!r:.80} is not that of uint8")


class ArrayBuilder:
    """Stands for the empty array _reconstruct makes; BUILD gives it its data."""

    __slots__ = ("array",)

    def __init__(self):
        self.array = None

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 4:  # numpy's oldest layout: no version
            state = (0,) + state
        if not isinstance(state, tuple) or len(state) != 5:
            raise pickle.UnpicklingError("array state is not (version, shape, dtype, fortran, data)")
        _, shape, dtype, fortran, data = state
        if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
            raise pickle.UnpicklingError(f"array shape {shape!r:.80} is not a tuple of sizes")
        if not isinstance(dtype, Uint8Dtype):
            raise pickle.UnpicklingError("array dtype is not uint8")
        if not isinstance(data, bytes) or len(data) != prod(shape):
            raise pickle.UnpicklingError(f"array data is not {prod(shape)} bytes")
        values = np.frombuffer(data, np.uint8)
        self.array = values.reshape(shape, order="F" if fortran else "C")


class Global:
    """What find_class hands out: a fresh object per load, so that a file
    (BUILD can set attributes) cannot change what another load gets."""

    __slots__ = ("function",)

    def __init__(self, function):
        self.function = function

    def __call__(self, *args):
        return self.function(*args)


def _reconstruct(subtype, shape, typecode):
    if not isinstance(subtype, NdarrayClass):
        raise pickle.UnpicklingError("_reconstruct is allowed for numpy.ndarray only")
    return ArrayBuilder()


def _dtype(spec, align=False, copy=True):
    text = spec.decode("latin-1") if isinstance(spec, bytes) else spec
    if text not in UINT8_NAMES:
        raise pickle.UnpicklingError(f"dtype {spec!r:.40} is not allowed, only uint8")
    return Uint8Dtype()


def _encode(text, encoding):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("codecs.encode is allowed for latin-1 text only")
    return text.encode("latin-1")


ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): lambda: Global(_reconstruct),  # numpy 1, the CIFAR files
    ("numpy._core.multiarray", "_reconstruct"): lambda: Global(_reconstruct),  # numpy 2
    ("numpy", "ndarray"): NdarrayClass,
    ("numpy", "dtype"): lambda: Global(_dtype),
    ("_codecs", "encode"): lambda: Global(_encode),
}


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            make = ALLOWED_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed") from None
        return make()

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not allowed")


def prescan(data):
    """Refuse opcodes outside ALLOWED_OPCODES and far-off memo indices.

    Raises pickle.UnpicklingError, or ValueError for a malformed stream.
    """
    for count, (opcode, arg, _) in enumerate(pickletools.genops(io.BytesIO(data))):
        name = opcode.name
        if name not in ALLOWED_OPCODES:
            raise pickle.UnpicklingError(f"opcode {name} is not allowed")
        if name in MEMO_OPCODES and not 0 <= arg <= count:
            # Picklers number memo entries 0, 1, 2, ...; a huge index would make
            # the unpickler allocate (and zero) a memo table of that size.
            raise pickle.UnpicklingError(f"memo index {arg} out of range")
        if name == "GLOBAL":
            module, _, attr = arg.partition(" ")
            if (module, attr) not in ALLOWED_GLOBALS:
                raise pickle.UnpicklingError(f"global {module}.{attr} is not allowed")


def load_dict(data, where):
    """The dict pickled in `data`, with str keys and uint8 arrays as values.

    Keys that are bytes (Python 2 str) are decoded from ASCII, as Keras does
    (with utf-8). Raises ValueError naming `where` for anything that is not
    such a pickle: other globals or opcodes, a damaged stream, a top level
    that is not a dict.
    """
    try:
        prescan(data)
        loaded = RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as err:  # every way a hostile or damaged stream can fail
        raise ValueError(f"{where}: not a CIFAR batch pickle ({type(err).__name__}: {err})") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{where}: the pickle holds a {type(loaded).__name__}, not a dict")
    result = {}
    for key, value in loaded.items():
        if isinstance(key, bytes):
            try:
                key = key.decode("ascii")
            except UnicodeDecodeError:
                raise ValueError(f"{where}: a key {key!r:.40} that is not ASCII") from None
        if not isinstance(key, str):
            raise ValueError(f"{where}: a key of type {type(key).__name__}, not a string")
        if isinstance(value, ArrayBuilder):
            if value.array is None:
                raise ValueError(f"{where}: array {key!r} has no data")
            value = value.array
        result[key] = value
    return result
