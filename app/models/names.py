"""A model's name as people write it: "SmolLM2 135M Instruct · Q4_1".

general.name is often a training-run label ("Smollm2 135M 8k Lc100K Mix1 Ep2"),
so it is kept as a separate raw field and not shown as the name. The file name
usually carries the model's own spelling ("SmolLM2-135M-Instruct.Q4_1.gguf");
it is used when it names the same model as general.basename (or there is no
basename). Otherwise the name is built from basename, size label and finetune.
The quantization goes last, after a middle dot.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SEPARATOR = " · "

# A quantization or precision tag at the end of a file name: ".Q4_1", "-Q4_K_M",
# "_IQ4_XS", "-f16", "-bf16", ".fp16", "-q8_0".
_QUANT_TAG = re.compile(
    r"[.\-_ ](?:I?Q\d+(?:_[A-Z0-9]+)*|F16|F32|BF16|FP16|FP32)$",
    re.IGNORECASE,
)
# File names that say nothing about the model.
_GENERIC_STEMS = {"model", "ggml-model", "ggml model", "gguf", "weights"}


def _words(text: str) -> str:
    """ "smollm2-135M_instruct" -> "smollm2 135M instruct": separators become spaces."""
    return " ".join(re.split(r"[\s\-_]+", text.strip()))


def _squashed(text: str) -> str:
    return re.sub(r"[\s\-_.]+", "", text).lower()


def _capitalised(word: str) -> str:
    """Lower-case words get a capital ("instruct" -> "Instruct"), sizes an upper-case
    unit ("0.5b" -> "0.5B"); words with capitals already keep them."""
    if re.fullmatch(r"\d+(?:\.\d+)?[kmbt]", word):
        return word.upper()
    return word[:1].upper() + word[1:] if word.islower() else word


def _file_stem(path: str | Path) -> str:
    stem = Path(path).name
    if stem.lower().endswith(".gguf"):
        stem = stem[: -len(".gguf")]
    while (match := _QUANT_TAG.search(stem)) is not None:
        stem = stem[: match.start()]
    return _words(stem)


def display_name(
    metadata: Mapping[str, Any], path: str | Path, quantization: str | None = None
) -> str:
    """The clean name to show for a model file, with its quantization when known."""
    basename = str(metadata.get("general.basename") or "").strip()
    stem = _file_stem(path)
    useful_stem = bool(stem) and stem.lower() not in _GENERIC_STEMS
    if useful_stem and (not basename or _squashed(stem).startswith(_squashed(basename))):
        name = stem
        spelled = _words(basename)
        if basename and name.lower().startswith(spelled.lower()) and name[: len(spelled)].islower():
            name = spelled + name[len(spelled) :]  # "qwen2.5 ..." -> the model's "Qwen2.5 ..."
    elif basename:
        parts = [basename, metadata.get("general.size_label"), metadata.get("general.finetune")]
        name = " ".join(_words(str(p)) for p in parts if p)
    else:
        name = str(metadata.get("general.name") or "").strip() or stem or Path(path).name
    name = " ".join(_capitalised(word) for word in name.split())
    return f"{name}{SEPARATOR}{quantization}" if quantization else name
