"""The chat without a screen: one conversation and its engine calls (``session``), the user's
defaults (``settings``), the SQLite store (``store``) and the per-reply stats they share."""
