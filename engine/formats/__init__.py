"""Readers and writers of checkpoint formats (Hugging Face folders, GGUF files)."""
