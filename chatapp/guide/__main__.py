"""``python -m chatapp.guide OUT_DIR [--seed N]``: write train.jsonl and eval.jsonl, print counts."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from chatapp.guide.corpus import write_corpus

    p = argparse.ArgumentParser(prog="python -m chatapp.guide", description=__doc__)
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    paths = write_corpus(args.out_dir, seed=args.seed)
    train = [json.loads(line) for line in paths["train"].read_text(encoding="utf-8").splitlines()]
    evals = [json.loads(line) for line in paths["eval"].read_text(encoding="utf-8").splitlines()]
    by_lang: Counter[str] = Counter()
    turns: Counter[int] = Counter()
    system = 0
    for conv in train:
        msgs = conv["messages"]
        text = msgs[-1]["content"]
        by_lang["zh" if any("\u4e00" <= ch <= "\u9fff" for ch in text) else "en"] += 1
        turns[sum(m["role"] == "user" for m in msgs)] += 1
        system += msgs[0]["role"] == "system"
    eval_counts = Counter((e["lang"], e["topic"]) for e in evals)
    topics = sorted({t for _, t in eval_counts})
    print(f"train: {len(train)} conversations ({paths['train'].stat().st_size:,} bytes)")
    print(
        "  by language (of the last reply): "
        + ", ".join(f"{k} {v}" for k, v in sorted(by_lang.items()))
    )
    print("  by user turns: " + ", ".join(f"{k}: {v}" for k, v in sorted(turns.items())))
    print(f"  with a system message: {system}")
    print(
        f"eval: {len(evals)} questions ({paths['eval'].stat().st_size:,} bytes), {len(topics)} topics"
    )
    for lang in ("en", "zh"):
        print(f"  {lang}: {sum(v for (lg, _), v in eval_counts.items() if lg == lang)}")
    print("eval questions per topic (en/zh):")
    for t in topics:
        print(f"  {t:<20} {eval_counts[('en', t)]}/{eval_counts[('zh', t)]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
