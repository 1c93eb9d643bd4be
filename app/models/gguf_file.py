"""A bounds-checked GGUF header reader.

llama.cpp aborts the whole process on some malformed files, so the parent process
checks the header, metadata and tensor table here before a worker loads the file.
Every read is checked against the file size; arrays (the tokenizer's ~50k strings)
are skipped by computing their byte length, which keeps this at ~10 ms.

Layout (GGUF v2/v3, little-endian): magic "GGUF", version u32, tensor count
u64, metadata count u64, metadata key/value pairs, tensor infos, padding to
general.alignment, tensor data.
"""

from __future__ import annotations

import mmap
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

from app.errors import ModelFileError

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_ARRAY_NESTING = 8
MAX_COUNT = 1_000_000  # tensors or metadata entries

# GGUF metadata value type -> struct format of a fixed-size value (8: string, 9: array).
_FIXED_FORMATS: dict[int, str] = {
    **{0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?"},
    **{10: "<Q", 11: "<q", 12: "<d"},
}
_TYPE_STRING = 8
_TYPE_ARRAY = 9
_FIXED_SIZES = {t: struct.calcsize(f) for t, f in _FIXED_FORMATS.items()}

Scalar = int | float | bool | str


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int  # relative to the start of the data section
    n_elements: int
    n_bytes: int


@dataclass
class GGUFInfo:
    """What the header says about a model, read without loading it."""

    path: Path
    size_bytes: int
    version: int
    architecture: str | None
    name: str | None
    parameters: int | None  # sum of tensor element counts
    file_type: int | None  # general.file_type (llama_ftype)
    quantization: str | None  # "Q4_1"; from file_type, else the most common tensor type
    context_length: int | None  # trained context length
    n_layers: int | None
    n_heads: int | None
    n_kv_heads: int | None  # largest per-layer value when the file stores one per layer
    embedding_length: int | None
    key_length: int | None  # per head; embedding_length / n_heads when the key is absent
    value_length: int | None
    has_chat_template: bool
    chat_template: str | None
    license: str | None
    tensor_count: int
    metadata: dict[str, Scalar] = field(default_factory=dict)  # scalars only, arrays skipped
    tensor_bytes: int = 0  # sum of tensor data sizes: the weights
    data_offset: int = 0  # where the tensor data section starts
    tensor_types: dict[str, int] = field(default_factory=dict)  # type name -> tensor count
    n_kv_heads_per_layer: list[int] | None = None  # only when the file stores an array
    vocab_size: int | None = None  # {arch}.vocab_size, else the tokenizer's token count


class _TruncatedError(Exception):
    """Something runs past the end of the file."""


class _CorruptedError(Exception):
    """A count, length, type or offset that no valid file has."""


class _Cursor:
    """Reads little-endian values from a buffer, never past its end."""

    def __init__(self, buf: mmap.mmap | bytes, size: int) -> None:
        self.buf = buf
        self.size = size
        self.pos = 0

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise _TruncatedError(f"{what} at byte {self.pos} runs past the end of the file")

    def unpack(self, fmt: str, n: int, what: str) -> tuple[int | float | bool, ...]:
        self.need(n, what)
        values = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return values

    def u32(self, what: str) -> int:
        return int(self.unpack("<I", 4, what)[0])

    def u64(self, what: str) -> int:
        return int(self.unpack("<Q", 8, what)[0])

    def check_span(self, n: int, what: str) -> None:
        """A length longer than the whole file is corruption; past its end, truncation."""
        if n > self.size:
            raise _CorruptedError(f"{what} at byte {self.pos} claims {n} bytes, beyond the file")
        self.need(n, what)

    def string(self, what: str) -> str:
        length = self.u64(f"length of {what}")
        self.check_span(length, what)
        self.pos += length
        return bytes(self.buf[self.pos - length : self.pos]).decode("utf-8", errors="replace")


def _skip_array(cur: _Cursor, key: str, depth: int) -> int:
    """Skip an array's contents; return its length."""
    if depth >= MAX_ARRAY_NESTING:
        raise _CorruptedError(
            f"metadata key {key!r} nests arrays more than {MAX_ARRAY_NESTING} deep"
        )
    etype = cur.u32(f"array type of {key}")
    count = cur.u64(f"array length of {key}")
    if etype in _FIXED_SIZES:
        n = count * _FIXED_SIZES[etype]
        cur.check_span(n, f"array {key!r} ({count} items)")
        cur.pos += n
    elif etype == _TYPE_STRING:
        cur.check_span(count * 8, f"array {key!r} ({count} strings)")
        # Walk the lengths only: decoding 50k tokenizer strings is the slow part otherwise.
        buf, pos, size, unpack = cur.buf, cur.pos, cur.size, struct.unpack_from
        for _ in range(count):
            if pos + 8 > size:
                raise _TruncatedError(f"array {key!r} runs past the end of the file")
            pos += 8 + unpack("<Q", buf, pos)[0]
        if pos > size:
            raise _TruncatedError(f"array {key!r} runs past the end of the file")
        cur.pos = pos
    elif etype == _TYPE_ARRAY:
        cur.check_span(count * 12, f"array {key!r} ({count} arrays)")
        for _ in range(count):
            _skip_array(cur, key, depth + 1)
    else:
        raise _CorruptedError(f"array {key!r} has unknown element type {etype}")
    return count


def _read_int_array(cur: _Cursor, key: str) -> list[int] | None:
    """Per-layer int arrays (e.g. head_count_kv on some models): read them when small."""
    start = cur.pos
    etype = cur.u32(f"array type of {key}")
    count = cur.u64(f"array length of {key}")
    fmt = _FIXED_FORMATS.get(etype)
    if fmt is None or etype in (6, 7, 12) or count > 4096:
        cur.pos = start
        _skip_array(cur, key, 0)
        return None
    values = cur.unpack(f"<{count}{fmt[1]}", count * _FIXED_SIZES[etype], f"array {key!r}")
    return [int(v) for v in values]


def quantization_name(file_type: int) -> str | None:
    """llama_ftype id -> "Q4_1", "F16", "Q4_K_M"; None for unknown ids."""
    try:
        name = LlamaFileType(file_type & ~LlamaFileType.GUESSED).name
    except ValueError:
        return None
    for prefix in ("MOSTLY_", "ALL_"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def ggml_type_name(ggml_type: int) -> str:
    try:
        return GGMLQuantizationType(ggml_type).name
    except ValueError:
        return f"type{ggml_type}"


def tensor_nbytes(ggml_type: int, n_elements: int) -> int:
    """Bytes of a tensor (or a row) of n_elements of this ggml type; ValueError when unknown."""
    try:
        block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        raise ValueError(f"unknown ggml tensor type {ggml_type}") from None
    if n_elements % block_size:
        raise ValueError(f"{n_elements} elements is not a whole number of {block_size}-blocks")
    return n_elements // block_size * type_size


def _read_tensor_info(cur: _Cursor, index: int) -> TensorInfo:
    name = cur.string(f"name of tensor {index}")
    n_dims = cur.u32(f"dimension count of tensor {name!r}")
    if not 1 <= n_dims <= MAX_DIMS:
        raise _CorruptedError(f"tensor {name!r} has {n_dims} dimensions (1..{MAX_DIMS} allowed)")
    shape = tuple(int(d) for d in cur.unpack(f"<{n_dims}Q", 8 * n_dims, f"shape of {name!r}"))
    n_elements = 1
    for dim in shape:
        n_elements *= dim
    if n_elements >= 1 << 62:
        raise _CorruptedError(f"tensor {name!r} has an absurd shape {shape}")
    ggml_type = cur.u32(f"type of tensor {name!r}")
    offset = cur.u64(f"data offset of tensor {name!r}")
    try:
        # ggml quantizes row by row: a row must be whole blocks, not only the tensor.
        tensor_nbytes(ggml_type, shape[0])
        n_bytes = tensor_nbytes(ggml_type, n_elements)
    except ValueError as exc:
        raise _CorruptedError(f"tensor {name!r}: {exc}") from None
    return TensorInfo(name, shape, ggml_type, offset, n_elements, n_bytes)


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def read_gguf_info(path: str | Path) -> GGUFInfo:
    """Read and check a GGUF file's header and tensor table; ModelFileError when bad."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelFileError(f"model file not found: {path}")
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory, not a GGUF model file")
    try:
        with path.open("rb") as fh:
            size = path.stat().st_size
            if size < 4:
                raise ModelFileError(f"{path} is not a GGUF model file (only {size} bytes)")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse(path, buf, size)
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    except _TruncatedError as exc:
        raise ModelFileError(f"{path} is truncated: {exc}") from None
    except _CorruptedError as exc:
        raise ModelFileError(f"{path} is corrupted: {exc}") from None


def _parse(path: Path, buf: mmap.mmap, size: int) -> GGUFInfo:
    cur = _Cursor(buf, size)
    magic = bytes(buf[:4])
    if magic != GGUF_MAGIC:
        raise ModelFileError(f"{path} is not a GGUF model file (it starts with {magic!r})")
    cur.pos = 4
    version = cur.u32("GGUF version")
    if version not in SUPPORTED_VERSIONS:  # a big-endian file also lands here
        supported = ", ".join(map(str, SUPPORTED_VERSIONS))
        raise ModelFileError(
            f"{path} has GGUF version {version}; supported versions are {supported}"
        )
    tensor_count = cur.u64("tensor count")
    kv_count = cur.u64("metadata count")
    # Absurd counts are corruption; plausible ones that run past the end are truncation.
    if kv_count > MAX_COUNT:
        raise _CorruptedError(
            f"header claims {kv_count} metadata entries, more than the file holds"
        )
    if tensor_count > MAX_COUNT:
        raise _CorruptedError(f"header claims {tensor_count} tensors, more than the file holds")

    metadata: dict[str, Scalar] = {}
    int_arrays: dict[str, list[int]] = {}
    for i in range(kv_count):
        key = cur.string(f"metadata key {i}")
        vtype = cur.u32(f"value type of {key!r}")
        fmt = _FIXED_FORMATS.get(vtype)
        if fmt is not None:
            metadata[key] = cur.unpack(fmt, _FIXED_SIZES[vtype], f"value of {key}")[0]
        elif vtype == _TYPE_STRING:
            metadata[key] = cur.string(f"value of {key}")
        elif vtype == _TYPE_ARRAY and key.endswith(".head_count_kv"):
            values = _read_int_array(cur, key)
            if values is not None:
                int_arrays[key] = values
        elif vtype == _TYPE_ARRAY:  # scalars only: skipping arrays is what keeps this fast
            count = _skip_array(cur, key, 0)
            if key == "tokenizer.ggml.tokens":
                int_arrays["n_vocab"] = [count]
        else:
            raise _CorruptedError(f"metadata key {key!r} has unknown value type {vtype}")

    tensors = [_read_tensor_info(cur, i) for i in range(tensor_count)]

    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if type(alignment) is not int or alignment <= 0 or alignment & (alignment - 1):
        raise _CorruptedError(f"general.alignment is {alignment!r}, not a power of two")
    data_offset = _align(cur.pos, alignment)
    _check_tensor_layout(tensors, alignment, data_offset, size)
    return _build_info(path, size, version, metadata, int_arrays, tensors, data_offset)


def _check_tensor_layout(
    tensors: list[TensorInfo], alignment: int, data_offset: int, size: int
) -> None:
    # Like llama.cpp's gguf loader: tensors are packed in order, each at the
    # aligned end of the one before.
    expected = 0
    for t in tensors:
        if t.offset % alignment:
            raise _CorruptedError(
                f"tensor {t.name!r} data offset {t.offset} is not {alignment}-aligned"
            )
        if t.offset != expected:
            raise _CorruptedError(
                f"tensor {t.name!r} data offset is {t.offset}, expected {expected}"
            )
        end = data_offset + t.offset + t.n_bytes
        if end > size:
            raise _TruncatedError(
                f"tensor {t.name!r} data ends at byte {end}, past the end of the file ({size})"
            )
        expected = _align(t.offset + t.n_bytes, alignment)
    trailing = size - (data_offset + expected)
    if trailing >= alignment:
        # Happens when the tensor count was lowered: the rest of the table is read as data.
        raise _CorruptedError(
            f"{trailing} bytes follow the last tensor's data; the tensor count "
            f"({len(tensors)}) does not match the file"
        )


def _int(metadata: dict[str, Scalar], key: str) -> int | None:
    value = metadata.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _str(metadata: dict[str, Scalar], key: str) -> str | None:
    value = metadata.get(key)
    return value if isinstance(value, str) else None


def _build_info(
    path: Path,
    size: int,
    version: int,
    metadata: dict[str, Scalar],
    int_arrays: dict[str, list[int]],
    tensors: list[TensorInfo],
    data_offset: int,
) -> GGUFInfo:
    arch = _str(metadata, "general.architecture")
    prefix = f"{arch}." if arch else "\0"
    n_heads = _int(metadata, prefix + "attention.head_count")
    embedding = _int(metadata, prefix + "embedding_length")
    per_layer_kv = int_arrays.get(prefix + "attention.head_count_kv")
    n_kv_heads = _int(metadata, prefix + "attention.head_count_kv")
    if n_kv_heads is None and per_layer_kv:
        n_kv_heads = max(per_layer_kv)
    if n_kv_heads is None:
        n_kv_heads = n_heads  # llama.cpp's default: no grouped-query attention
    key_length = _int(metadata, prefix + "attention.key_length")
    value_length = _int(metadata, prefix + "attention.value_length")
    if n_heads and embedding:
        key_length = key_length if key_length is not None else embedding // n_heads
        value_length = value_length if value_length is not None else embedding // n_heads

    type_counts = Counter(ggml_type_name(t.ggml_type) for t in tensors)
    file_type = _int(metadata, "general.file_type")
    quantization = quantization_name(file_type) if file_type is not None else None
    if quantization is None and tensors:
        # Prefer the weight matrices' type: 1-D norms are F32 in every file.
        big = Counter(ggml_type_name(t.ggml_type) for t in tensors if len(t.shape) >= 2)
        quantization = (big or type_counts).most_common(1)[0][0]
    chat_template = _str(metadata, "tokenizer.chat_template")
    return GGUFInfo(
        path=path,
        size_bytes=size,
        version=version,
        architecture=arch,
        name=_str(metadata, "general.name"),
        parameters=sum(t.n_elements for t in tensors) if tensors else None,
        file_type=file_type,
        quantization=quantization,
        context_length=_int(metadata, prefix + "context_length"),
        n_layers=_int(metadata, prefix + "block_count"),
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        embedding_length=embedding,
        key_length=key_length,
        value_length=value_length,
        has_chat_template=bool(chat_template),
        chat_template=chat_template,
        license=_str(metadata, "general.license"),
        tensor_count=len(tensors),
        metadata=metadata,
        tensor_bytes=sum(t.n_bytes for t in tensors),
        data_offset=data_offset,
        tensor_types=dict(type_counts),
        n_kv_heads_per_layer=per_layer_kv,
        vocab_size=_int(metadata, prefix + "vocab_size") or int_arrays.get("n_vocab", [None])[0],
    )
