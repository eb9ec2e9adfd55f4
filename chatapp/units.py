"""Sizes and counts for people: one formatter for every view (the CLI and the TUI agree)."""

from __future__ import annotations


def human_size(n: float) -> str:
    """Bytes in SI units (1 MB = 1,000,000 bytes), as disk tools and downloads show them."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover - the loop always returns


def human_count(n: int) -> str:
    """A parameter count: 134.5M, 1.2B."""
    if n >= 1e9:
        return f"{n / 1e9:.1f}B"
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}K"
    return str(n)
