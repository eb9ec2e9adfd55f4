"""Errors the engine raises on purpose; each message is one line a user can act on."""

from __future__ import annotations


class ModelLoadError(Exception):
    """A model could not be loaded (missing, corrupt, foreign or unsupported)."""


class ContextOverflowError(ValueError):
    """A prompt cannot fit in the model's context window."""


class GenerationError(RuntimeError):
    """Generation cannot go on: non-finite logits, or a generation already running in the
    calling thread."""
