"""Model names for people, from the GGUF's general.* fields or else the file name."""

from __future__ import annotations

from app.models.gguf_file import read_gguf_info
from app.models.library import ModelLibrary
from app.models.names import display_name


def test_the_bundled_model_gets_its_own_spelling_and_quantization(bundled_model):
    info = read_gguf_info(bundled_model)
    assert info.name == "Smollm2 135M 8k Lc100K Mix1 Ep2"  # general.name: a training label
    assert display_name(info.metadata, bundled_model, info.quantization) == (
        "SmolLM2 135M Instruct · Q4_1"
    )


def test_the_library_shows_the_clean_name_and_keeps_general_name(bundled_model):
    entry = next(e for e in ModelLibrary().scan() if e.path == bundled_model)
    assert entry.name == "SmolLM2 135M Instruct · Q4_1"
    assert entry.to_dict()["general_name"] == "Smollm2 135M 8k Lc100K Mix1 Ep2"


def test_a_lower_case_file_name_takes_the_basename_spelling():
    meta = {"general.basename": "Qwen2.5", "general.size_label": "0.5B"}
    name = display_name(meta, "/m/qwen2.5-0.5b-instruct-q4_k_m.gguf", "Q4_K_M")
    assert name == "Qwen2.5 0.5B Instruct · Q4_K_M"


def test_a_generic_file_name_uses_basename_size_and_finetune():
    meta = {
        "general.basename": "Llama-3.2",
        "general.size_label": "1B",
        "general.finetune": "instruct",
    }
    assert display_name(meta, "/m/model.gguf", "Q8_0") == "Llama 3.2 1B Instruct · Q8_0"


def test_without_metadata_the_file_name_is_cleaned():
    assert display_name({}, "/m/tinyllama-1.1b-chat-v1.0.Q8_0.gguf", None) == (
        "Tinyllama 1.1B Chat V1.0"
    )
    assert display_name({"general.name": "Foo"}, "/m/ggml-model-f16.gguf", "F16") == "Foo · F16"
