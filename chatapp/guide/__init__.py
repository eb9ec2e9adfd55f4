"""The corpus of the embedded default model "guide": a deterministic generator of training
conversations about chatapp (English and Chinese) and of a held-out eval set.

Pure standard library (no torch, no engine): ``python -m chatapp.guide OUT_DIR [--seed N]``."""
