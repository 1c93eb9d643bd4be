"""A corpus of malformed GGUF files, written with struct.

`synthetic_corpus(dir)` builds one small well-formed GGUF v3 file (several metadata
types, a nested array, a string array, three tensors, alignment padding, data) and
writes a malformed variant per case: a truncation at every section boundary and one
byte inside each field, wrong magic, unsupported versions, huge string, array and
tensor counts, more than 4 dimensions, unknown value and tensor types, offsets and
sizes past the end of the file or overflowing 64 bits, bad alignment values.

`real_model_truncations(model, dir)` walks a real GGUF's header and yields sparse
files cut at each of its section boundaries (each metadata pair, each tensor info,
the padding, the data): the header bytes are real, the data beyond them zeros, which
is all a size check reads.

Each case is (name, path, expect) with expect "refuse" (the parent's header check
must refuse it) or "load-fails" (well-formed, but not a model llama.cpp can run).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
ALIGN = 32
U64_MAX = 2**64 - 1
F32_TYPE, F16_TYPE, Q8_0_TYPE = 0, 1, 8


def _str(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


@dataclass
class Part:
    """One field of the file: where it starts, its bytes, and its name for case labels."""

    name: str
    data: bytes


@dataclass
class Tensor:
    name: str
    dims: tuple[int, ...]
    ggml_type: int
    offset: int
    nbytes: int


def _kv_value(vtype: int, value: object) -> bytes:
    fmt = {U8: "<B", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?", U64: "<Q", F64: "<d"}
    if vtype == STRING:
        return _str(value)  # type: ignore[arg-type]
    return struct.pack(fmt[vtype], value)


def _array(etype: int, items: list[object]) -> bytes:
    body = b"".join(
        _array(*item) if etype == ARRAY else _kv_value(etype, item)  # type: ignore[misc]
        for item in items
    )
    return struct.pack("<IQ", etype, len(items)) + body


class GGUFBuilder:
    """A small valid GGUF v3, as a list of named parts that cases then replace or cut."""

    def __init__(self) -> None:
        self.magic = b"GGUF"
        self.version = 3
        self.kvs: list[tuple[str, bytes]] = [
            ("general.architecture", struct.pack("<I", STRING) + _str("llama")),
            ("general.name", struct.pack("<I", STRING) + _str("corpus")),
            ("general.alignment", struct.pack("<I", U32) + struct.pack("<I", ALIGN)),
            ("llama.context_length", struct.pack("<I", U32) + struct.pack("<I", 128)),
            ("llama.embedding_length", struct.pack("<I", U64) + struct.pack("<Q", 32)),
            ("llama.rope.freq_base", struct.pack("<I", F32) + struct.pack("<f", 10000.0)),
            ("tokenizer.ggml.add_bos_token", struct.pack("<I", BOOL) + struct.pack("<?", True)),
            (
                "tokenizer.ggml.tokens",
                struct.pack("<I", ARRAY) + _array(STRING, ["<s>", "</s>", "a", "b"]),
            ),
            (
                "corpus.nested",
                struct.pack("<I", ARRAY) + _array(ARRAY, [(U32, [1, 2]), (I32, [3])]),
            ),
        ]
        self.tensors = [
            Tensor("token_embd.weight", (32, 4), F32_TYPE, 0, 32 * 4 * 4),
            Tensor("output_norm.weight", (32,), F16_TYPE, 512, 32 * 2),
            Tensor("blk.0.attn_q.weight", (32, 2), Q8_0_TYPE, 576, 2 * 34),
        ]
        self.tensor_count: int | None = None  # None: len(tensors)
        self.kv_count: int | None = None

    def tensor_info(self, t: Tensor) -> bytes:
        dims = b"".join(struct.pack("<Q", d) for d in t.dims)
        return (
            _str(t.name)
            + struct.pack("<I", len(t.dims))
            + dims
            + struct.pack("<IQ", t.ggml_type, t.offset)
        )

    def parts(self) -> list[Part]:
        parts = [
            Part("magic", self.magic),
            Part("version", struct.pack("<I", self.version)),
            Part(
                "tensor count",
                struct.pack(
                    "<Q", len(self.tensors) if self.tensor_count is None else self.tensor_count
                ),
            ),
            Part(
                "metadata count",
                struct.pack("<Q", len(self.kvs) if self.kv_count is None else self.kv_count),
            ),
        ]
        for key, value in self.kvs:
            parts.append(Part(f"key {key}", _str(key)))
            parts.append(Part(f"value of {key}", value))
        for t in self.tensors:
            parts.append(Part(f"tensor info {t.name}", self.tensor_info(t)))
        header = sum(len(p.data) for p in parts)
        parts.append(Part("alignment padding", b"\0" * (-header % ALIGN)))
        data = bytearray()
        for t in self.tensors:
            # Packed in order whatever the infos claim: a case changes the claim only.
            data += bytes((i * 7) % 251 for i in range(t.nbytes))
            data += b"\0" * (-len(data) % ALIGN)
        parts.append(Part("tensor data", bytes(data)))
        return parts

    def build(self) -> bytes:
        return b"".join(p.data for p in self.parts())


@dataclass
class Case:
    name: str
    path: Path
    expect: str  # "refuse" or "load-fails"


def _variant(**changes: object) -> GGUFBuilder:
    builder = GGUFBuilder()
    for key, value in changes.items():
        setattr(builder, key, value)
    return builder


def _with_kv(key: str, value: bytes) -> GGUFBuilder:
    builder = GGUFBuilder()
    builder.kvs = [(k, value if k == key else v) for k, v in builder.kvs]
    if key not in dict(builder.kvs):
        builder.kvs.append((key, value))
    return builder


def _with_tensor(index: int, **changes: object) -> GGUFBuilder:
    builder = GGUFBuilder()
    t = builder.tensors[index]
    for key, value in changes.items():
        setattr(t, key, value)
    return builder


def _raw_variants() -> Iterator[tuple[str, bytes, str]]:
    """(name, file bytes, expect) for every case but the truncations."""
    good = GGUFBuilder().build()
    yield "well-formed but not a runnable model", good, "load-fails"
    for magic in (b"GGUG", b"\0\0\0\0", b"GGML", b"ggjt", b"FUGG", b"gguf"):
        yield f"magic {magic!r}", magic + good[4:], "refuse"
    for version in (0, 1, 4, 255, 2**31, 0xFFFFFFFF, 0x03000000):
        yield f"version {version:#x}", good[:4] + struct.pack("<I", version) + good[8:], "refuse"
    for count in (U64_MAX, 2**63, 10**7, 4, 2):
        builder = _variant(tensor_count=count)
        yield f"tensor count {count}", builder.build(), "refuse"
    for count in (U64_MAX, 2**40, 10**7, len(GGUFBuilder().kvs) + 1):
        yield f"metadata count {count}", _variant(kv_count=count).build(), "refuse"
    # Huge string lengths: a key, a value, a tensor name.
    for length in (U64_MAX, 2**63, 2**32, len(good) + 1):
        key = struct.pack("<Q", length) + b"general.architecture"
        yield f"key length {length}", good.replace(_str("general.architecture"), key, 1), "refuse"
        value = struct.pack("<I", STRING) + struct.pack("<Q", length) + b"llama"
        yield (
            f"string value length {length}",
            _with_kv("general.architecture", value).build(),
            "refuse",
        )
        name = struct.pack("<Q", length) + b"token_embd.weight"
        yield (
            f"tensor name length {length}",
            good.replace(_str("token_embd.weight"), name, 1),
            "refuse",
        )
    # Huge array lengths, per element kind.
    for length in (U64_MAX, 2**62, 2**32, 10**6):
        for etype, label in ((STRING, "strings"), (U32, "u32s"), (ARRAY, "arrays"), (F64, "f64s")):
            value = struct.pack("<I", ARRAY) + struct.pack("<IQ", etype, length) + b"\0" * 16
            yield f"array of {length} {label}", _with_kv("corpus.huge", value).build(), "refuse"
    # Arrays nested past any sane depth.
    nested = struct.pack("<I", ARRAY)
    for _ in range(64):
        nested += struct.pack("<IQ", ARRAY, 1)
    nested += struct.pack("<IQ", U8, 1) + b"\1"
    yield "arrays nested 64 deep", _with_kv("corpus.deep", nested).build(), "refuse"
    # Unknown metadata value and array element types.
    for vtype in (13, 99, 0xFFFFFFFF):
        value = struct.pack("<I", vtype) + b"\0" * 8
        yield f"value type {vtype}", _with_kv("corpus.odd", value).build(), "refuse"
        value = struct.pack("<I", ARRAY) + struct.pack("<IQ", vtype, 1) + b"\0" * 8
        yield f"array element type {vtype}", _with_kv("corpus.odd", value).build(), "refuse"
    # Dimension counts.
    for n_dims in (0, 5, 8, 0xFFFFFFFF):
        dims = (4,) * min(n_dims, 8)
        builder = _with_tensor(1, dims=dims)
        info = builder.tensor_info(builder.tensors[1])
        patched = (
            info[: 8 + len("output_norm.weight")]
            + struct.pack("<I", n_dims)
            + info[12 + len("output_norm.weight") :]
        )
        yield f"{n_dims} dimensions", builder.build().replace(info, patched, 1), "refuse"
    # Unknown or retired tensor types.
    for ggml_type in (4, 5, 42, 1000, 0xFFFFFFFF):
        yield f"tensor type {ggml_type}", _with_tensor(1, ggml_type=ggml_type).build(), "refuse"
    # Shapes whose size overflows 64 bits, or does not fit the type's blocks.
    for dims in ((2**32, 2**32, 2**32), (2**63, 2), (U64_MAX,), (2**62, 2**2)):
        yield f"shape {dims}", _with_tensor(0, dims=dims).build(), "refuse"
    yield (
        "Q8_0 elements not a whole number of blocks",
        _with_tensor(2, dims=(33, 2)).build(),
        "refuse",
    )
    # 96 elements are 3 whole blocks, but a row of 48 is not: ggml needs whole rows.
    yield (
        "Q8_0 rows not a whole number of blocks",
        _with_tensor(2, dims=(48, 2), nbytes=102).build(),
        "refuse",
    )
    # Offsets: past the end, overflowing, misaligned, overlapping, out of order.
    size = len(good)
    for offset in (size * 2, 2**63, U64_MAX, U64_MAX - 31, 513, 0, 480):
        yield f"tensor offset {offset}", _with_tensor(1, offset=offset).build(), "refuse"
    # The data section cut short, or a tensor larger than the file.
    yield "last tensor's data cut by one byte", good[: _last_tensor_end(good) - 1], "refuse"
    yield "tensor larger than the file", _with_tensor(2, dims=(32, 2**20)).build(), "refuse"
    # Alignment values.
    for value in (
        struct.pack("<I", U32) + struct.pack("<I", 0),
        struct.pack("<I", U32) + struct.pack("<I", 3),
        struct.pack("<I", U32) + struct.pack("<I", 48),
        struct.pack("<I", U32) + struct.pack("<I", 0xFFFFFFFF),
        struct.pack("<I", U32) + struct.pack("<I", 2**31),
        struct.pack("<I", U64) + struct.pack("<Q", 2**63),
        struct.pack("<I", STRING) + _str("32"),
        struct.pack("<I", F32) + struct.pack("<f", 32.0),
        struct.pack("<I", I32) + struct.pack("<i", -32),
    ):
        label = value[4:].hex()[:18]
        yield (
            f"alignment {label} (type {value[0]})",
            _with_kv("general.alignment", value).build(),
            "refuse",
        )
    # Trailing garbage after the data (a lowered tensor count reads like this).
    yield "garbage after the data", good + os.urandom(4096), "refuse"


def _last_tensor_end(good: bytes) -> int:
    """Where the last tensor's bytes end (the padding after it is optional)."""
    last = GGUFBuilder().tensors[-1]
    return len(good) - len(GGUFBuilder().parts()[-1].data) + last.offset + last.nbytes


def _truncations() -> Iterator[tuple[str, bytes]]:
    good = GGUFBuilder().build()
    at = 0
    for part in GGUFBuilder().parts():
        if part.data:
            if at > 0:
                yield f"cut before {part.name} (byte {at})", good[:at]
            if len(part.data) > 1:
                yield (
                    f"cut inside {part.name} (byte {at + len(part.data) // 2})",
                    good[: at + len(part.data) // 2],
                )
        at += len(part.data)
    yield "empty file", b""
    yield "cut one byte into the last tensor's data", good[: _last_tensor_end(good) - 1]


def synthetic_corpus(directory: Path) -> list[Case]:
    directory.mkdir(parents=True, exist_ok=True)
    cases = []
    for i, (name, data) in enumerate(_truncations()):
        path = directory / f"trunc-{i:03d}.gguf"
        path.write_bytes(data)
        cases.append(Case(f"truncation: {name}", path, "refuse"))
    for i, (name, data, expect) in enumerate(_raw_variants()):
        path = directory / f"bad-{i:03d}.gguf"
        path.write_bytes(data)
        cases.append(Case(name, path, expect))
    return cases


# -- cutting a real model at its section boundaries -----------------------------------------


def _skip_value(buf: bytes, pos: int, vtype: int) -> int:
    sizes = {U8: 1, I8: 1, U16: 2, I16: 2, U32: 4, I32: 4, F32: 4, BOOL: 1, U64: 8, I64: 8, F64: 8}
    if vtype in sizes:
        return pos + sizes[vtype]
    if vtype == STRING:
        return pos + 8 + struct.unpack_from("<Q", buf, pos)[0]
    etype, count = struct.unpack_from("<IQ", buf, pos)
    pos += 12
    if etype in sizes:
        return pos + count * sizes[etype]
    for _ in range(count):
        pos = _skip_value(buf, pos, etype)
    return pos


def section_boundaries(header: bytes) -> list[tuple[str, int]]:
    """(what begins there, byte offset) for a well-formed GGUF's header sections."""
    n_tensors, n_kv = struct.unpack_from("<QQ", header, 8)
    marks = [("version", 4), ("tensor count", 8), ("metadata count", 16)]
    pos, alignment = 24, ALIGN
    for _ in range(n_kv):
        key_len = struct.unpack_from("<Q", header, pos)[0]
        key = header[pos + 8 : pos + 8 + key_len].decode(errors="replace")
        marks.append((f"key {key}", pos))
        pos += 8 + key_len
        vtype = struct.unpack_from("<I", header, pos)[0]
        marks.append((f"value of {key}", pos))
        if key == "general.alignment":
            alignment = struct.unpack_from("<I", header, pos + 4)[0]
        pos = _skip_value(header, pos + 4, vtype)
    for i in range(n_tensors):
        marks.append((f"tensor info {i}", pos))
        name_len = struct.unpack_from("<Q", header, pos)[0]
        n_dims = struct.unpack_from("<I", header, pos + 8 + name_len)[0]
        pos += 8 + name_len + 4 + 8 * n_dims + 4 + 8
    marks.append(("alignment padding", pos))
    marks.append(("tensor data", pos + (-pos % alignment)))
    return marks


def real_model_truncations(
    model: Path, directory: Path, header_bytes: int = 8 * 2**20
) -> Iterator[Case]:
    """Sparse copies of `model` cut at each section boundary (one file, reused: each case
    must be checked before the next is yielded)."""
    directory.mkdir(parents=True, exist_ok=True)
    with model.open("rb") as f:
        header = f.read(header_bytes)
    size = model.stat().st_size
    marks = section_boundaries(header)
    data_start = marks[-1][1]
    points = [(name, offset) for name, offset in marks if offset > 0]
    points += [
        ("inside the tensor data", data_start + (size - data_start) // 2),
        ("one byte short", size - 1),
    ]
    path = directory / "real-cut.gguf"
    with path.open("wb") as f:
        f.write(header[:data_start])
    # Largest first: each cut only shrinks the file, so the header bytes stay real
    # (the first cut extends it past the header with zeros, sparse).
    for name, offset in sorted(points, key=lambda point: -point[1]):
        os.truncate(path, offset)
        yield Case(f"real model cut before {name} (byte {offset})", path, "refuse")
