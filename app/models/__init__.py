"""Model files: GGUF inspection, the local library, memory fit, Hugging Face downloads."""
