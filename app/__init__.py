"""Glassbox core: engine, metrics, storage and models. Never imports Qt."""

__version__ = "0.1.0"
