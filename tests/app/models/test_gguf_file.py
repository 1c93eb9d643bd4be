"""read_gguf_info on the real bundled model and on broken copies of real files."""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from app.errors import ModelFileError
from app.models.gguf_file import quantization_name, read_gguf_info, tensor_nbytes


def test_bundled_model_header(bundled_model: Path) -> None:
    info = read_gguf_info(bundled_model)
    assert info.architecture == "llama"
    assert info.n_layers == 30
    assert info.has_chat_template and info.chat_template and "im_start" in info.chat_template
    assert info.quantization == "Q4_1"
    assert info.file_type == 3
    assert info.version == 3
    assert info.context_length == 8192
    assert (info.n_heads, info.n_kv_heads, info.embedding_length) == (9, 3, 576)
    assert (info.key_length, info.value_length) == (64, 64)
    assert info.license == "apache-2.0"
    assert info.tensor_count == 272
    assert info.parameters == 134_515_008  # ~135M, as the name says
    assert info.size_bytes == bundled_model.stat().st_size
    assert info.data_offset + info.tensor_bytes == info.size_bytes
    # Scalars only: the 49k-entry tokenizer arrays are skipped, not decoded.
    assert "tokenizer.ggml.tokens" not in info.metadata
    assert info.metadata["llama.vocab_size"] == info.vocab_size == 49152
    assert all(isinstance(v, (int, float, bool, str)) for v in info.metadata.values())


def test_tiny_written_file(make_gguf: Callable[..., Path]) -> None:
    info = read_gguf_info(make_gguf(chat_template=None, file_type=None))
    assert info.name == "tiny"
    assert not info.has_chat_template and info.chat_template is None
    assert info.quantization == "F32"  # no general.file_type: the weight matrices' type
    assert info.parameters == 8 * 64 + 64
    assert info.key_length == 16  # embedding / heads when the key is absent


def _cut_copy(src: Path, dst: Path, length: int) -> Path:
    with src.open("rb") as fin, dst.open("wb") as fout:
        remaining = length
        while remaining:
            chunk = fin.read(min(remaining, 1 << 22))
            fout.write(chunk)
            remaining -= len(chunk)
    return dst


@pytest.mark.parametrize(
    "where",
    [
        "version",
        "counts",
        "first key",
        "tokenizer array",
        "tensor table",
        "tensor data",
        "last byte",
    ],
)
def test_truncated_copies(bundled_model: Path, tmp_path: Path, where: str) -> None:
    info = read_gguf_info(bundled_model)
    cut = {
        "version": 6,
        "counts": 20,
        "first key": 40,
        "tokenizer array": 500_000,
        "tensor table": info.data_offset - 100,
        "tensor data": info.data_offset + 1000,
        "last byte": info.size_bytes - 1,
    }[where]
    copy = _cut_copy(bundled_model, tmp_path / "cut.gguf", cut)
    with pytest.raises(ModelFileError, match="is truncated") as excinfo:
        read_gguf_info(copy)
    assert str(copy) in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.gguf"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(ModelFileError, match="is not a GGUF model file"):
        read_gguf_info(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"")
    with pytest.raises(ModelFileError, match=r"not a GGUF model file \(only 0 bytes\)"):
        read_gguf_info(path)


def test_bad_magic(make_gguf: Callable[..., Path]) -> None:
    path = make_gguf()
    data = bytearray(path.read_bytes())
    data[:4] = b"GGML"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"not a GGUF model file \(it starts with b'GGML'\)"):
        read_gguf_info(path)


@pytest.mark.parametrize("version", [1, 99])
def test_unsupported_version(make_gguf: Callable[..., Path], version: int) -> None:
    path = make_gguf()
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 4, version)
    path.write_bytes(bytes(data))
    with pytest.raises(
        ModelFileError, match=f"GGUF version {version}; supported versions are 2, 3"
    ):
        read_gguf_info(path)


def _flip(src: Path, dst: Path, offset: int, bit: int) -> Path:
    shutil.copyfile(src, dst)
    with dst.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([byte ^ (1 << bit)]))
    return dst


def test_flipped_tensor_count_high_bit(bundled_model: Path, tmp_path: Path) -> None:
    path = _flip(bundled_model, tmp_path / "flip.gguf", 8 + 5, 0)  # 272 + 2**40
    with pytest.raises(ModelFileError, match=r"is corrupted: header claims \d+ tensors"):
        read_gguf_info(path)


def test_flipped_tensor_count_lower(bundled_model: Path, tmp_path: Path) -> None:
    path = _flip(bundled_model, tmp_path / "flip.gguf", 9, 0)  # 272 -> 16 tensors
    with pytest.raises(ModelFileError, match=r"corrupted: .*tensor count \(16\) does not match"):
        read_gguf_info(path)


def test_flipped_tensor_count_higher(bundled_model: Path, tmp_path: Path) -> None:
    path = _flip(bundled_model, tmp_path / "flip.gguf", 8, 0)  # 272 -> 273 tensors
    with pytest.raises(ModelFileError, match=r"is (corrupted|truncated)"):
        read_gguf_info(path)


def test_flipped_metadata_count(bundled_model: Path, tmp_path: Path) -> None:
    path = _flip(bundled_model, tmp_path / "flip.gguf", 16 + 6, 3)
    with pytest.raises(ModelFileError, match=r"is corrupted: header claims .* metadata entries"):
        read_gguf_info(path)


def _tensor_info_offset(data: bytes, name: bytes) -> int:
    """Byte offset just after a tensor's name in the tensor table."""
    at = data.index(struct.pack("<Q", len(name)) + name)
    return at + 8 + len(name)


def test_unknown_tensor_type(make_gguf: Callable[..., Path]) -> None:
    path = make_gguf()
    data = bytearray(path.read_bytes())
    pos = _tensor_info_offset(bytes(data), b"a.weight") + 4 + 2 * 8  # n_dims, two dims
    struct.pack_into("<I", data, pos, 99)
    path.write_bytes(bytes(data))
    with pytest.raises(
        ModelFileError, match=r"corrupted: tensor 'a.weight': unknown ggml tensor type 99"
    ):
        read_gguf_info(path)


def test_misaligned_tensor_offset(make_gguf: Callable[..., Path]) -> None:
    path = make_gguf()
    data = bytearray(path.read_bytes())
    pos = _tensor_info_offset(bytes(data), b"b.weight") + 4 + 8 + 4  # n_dims, one dim, type
    (offset,) = struct.unpack_from("<Q", data, pos)
    struct.pack_into("<Q", data, pos, offset + 1)
    path.write_bytes(bytes(data))
    with pytest.raises(
        ModelFileError, match=r"corrupted: tensor 'b.weight' data offset .* not 32-aligned"
    ):
        read_gguf_info(path)


def test_too_many_dimensions(make_gguf: Callable[..., Path]) -> None:
    path = make_gguf()
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, _tensor_info_offset(bytes(data), b"a.weight"), 9)
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="has 9 dimensions"):
        read_gguf_info(path)


def test_unknown_value_type(make_gguf: Callable[..., Path]) -> None:
    path = make_gguf()
    data = bytearray(path.read_bytes())
    key = b"general.architecture"
    pos = data.index(key) + len(key)
    struct.pack_into("<I", data, pos, 77)
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"'general.architecture' has unknown value type 77"):
        read_gguf_info(path)


def test_absurd_string_length(make_gguf: Callable[..., Path]) -> None:
    path = make_gguf()
    data = bytearray(path.read_bytes())
    struct.pack_into("<Q", data, 24, 1 << 40)  # length of the first key
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"corrupted: metadata key 0 .* beyond the file"):
        read_gguf_info(path)


def test_directory(tmp_path: Path) -> None:
    folder = tmp_path / "model.gguf"
    folder.mkdir()
    with pytest.raises(ModelFileError, match="is a directory, not a GGUF model file"):
        read_gguf_info(folder)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"model file not found: .*nope.gguf"):
        read_gguf_info(tmp_path / "nope.gguf")


def test_helpers() -> None:
    assert quantization_name(15) == "Q4_K_M"
    assert quantization_name(0) == "F32"
    assert quantization_name(3 | 1024) == "Q4_1"  # GUESSED flag
    assert quantization_name(4242) is None
    assert tensor_nbytes(3, 64) == 2 * 20  # Q4_1: 32-element blocks of 20 bytes
    with pytest.raises(ValueError, match="unknown ggml tensor type"):
        tensor_nbytes(99, 32)
