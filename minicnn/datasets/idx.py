"""Reading and checking IDX files, the format MNIST is distributed in.

An IDX file is a big-endian header (magic number, then one uint32 per
dimension) followed by the raw uint8 values. The magic number's last byte is
the number of dimensions and its third byte the element type (0x08: uint8).
"""

import hashlib
import zlib
from dataclasses import dataclass
from math import prod

import numpy as np

GZIP_MAGIC = b"\x1f\x8b"
UINT8_TYPE_CODE = 0x08


@dataclass(frozen=True)
class IdxSpec:
    """What one IDX file must contain: name, magic number, shape, checksum.

    sha256 is over the decompressed file (header included), so the same
    value checks a raw file, a .gz file and bytes rebuilt from an array.
    """

    name: str
    magic: int
    shape: tuple
    sha256: str

    @property
    def header_size(self):
        return 4 + 4 * len(self.shape)

    @property
    def file_size(self):
        return self.header_size + prod(self.shape)


def maybe_gunzip(data, spec, where):
    """Return the decompressed bytes of `data` if it is gzip'ed, else `data`.

    Detected by content, not by file name, so a misnamed file still works.
    Output is capped just above the expected size so that a corrupt or
    hostile archive cannot blow up memory.
    """
    if data[:2] != GZIP_MAGIC:
        return data
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing
    try:
        out = inflater.decompress(data, spec.file_size + 1)
    except zlib.error as err:
        raise ValueError(f"{where}: not a valid gzip file ({err})") from None
    if len(out) > spec.file_size:
        raise ValueError(
            f"{where}: decompresses to more than the expected "
            f"{spec.file_size} bytes; not the {spec.name} file"
        )
    if not inflater.eof:  # the gzip trailer (with its CRC) was never reached
        raise ValueError(f"{where}: gzip data is truncated")
    return out


def parse_idx(data, spec, where=None):
    """Check IDX bytes against `spec` and return them as a uint8 array.

    Raises ValueError naming `where` (a path or URL) with expected vs actual
    for a bad magic number, wrong dimensions, wrong length or wrong sha256.
    The returned array is a writable copy, like Keras's.
    """
    where = where or spec.name
    data = maybe_gunzip(data, spec, where)
    if len(data) < spec.header_size:
        raise ValueError(
            f"{where}: only {len(data)} bytes, too short for an IDX header "
            f"({spec.header_size} bytes expected)"
        )
    magic = int.from_bytes(data[:4], "big")
    if magic != spec.magic:
        raise ValueError(
            f"{where}: bad magic number {magic}, expected {spec.magic} "
            f"(is this the {spec.name} file?)"
        )
    dims = tuple(
        int(d) for d in np.frombuffer(data, ">u4", len(spec.shape), offset=4)
    )
    if dims != spec.shape:
        raise ValueError(f"{where}: header gives shape {dims}, expected {spec.shape}")
    if len(data) != spec.file_size:
        raise ValueError(
            f"{where}: file is {len(data)} bytes, expected {spec.file_size} "
            "(truncated or padded)"
        )
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec.sha256:
        raise ValueError(
            f"{where}: sha256 of the decompressed bytes is {digest}, "
            f"expected {spec.sha256} (corrupted or not the original {spec.name})"
        )
    values = np.frombuffer(data, np.uint8, offset=spec.header_size)
    return values.reshape(spec.shape).copy()


def encode_idx(array, magic):
    """Return the IDX file bytes for a uint8 array (header + values).

    Used to check arrays from other sources (.npz, tensorflow-datasets)
    with the same checksums as the original files.
    """
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = magic.to_bytes(4, "big") + np.asarray(array.shape, ">u4").tobytes()
    return header + array.tobytes()
