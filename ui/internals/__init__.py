"""The internals panel: per-turn plots, the live strip and the readout."""
