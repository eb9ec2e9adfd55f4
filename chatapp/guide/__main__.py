"""``python -m chatapp.guide OUT_DIR [--seed N]``: write train.jsonl and eval.jsonl, print counts."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from chatapp.guide.corpus import LANGS, build_corpus, write_corpus
    from chatapp.guide.scope import group

    p = argparse.ArgumentParser(prog="python -m chatapp.guide", description=__doc__)
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    paths = write_corpus(args.out_dir, seed=args.seed)
    train, evals = build_corpus(args.seed)  # the same data again (cheap), to count it
    topic_of = {(a, lang): t.id for lang, ts in LANGS.items() for t in ts for a in t.answers}
    answer_lang = {a: lang for a, lang in topic_of}
    convs: Counter[str] = Counter()
    turns: Counter[int] = Counter()
    replies: Counter[tuple[str, str]] = Counter()
    groups: Counter[str] = Counter()  # conversations with a reply of each eval group
    system = 0
    for conv in train:
        msgs = conv["messages"]
        convs[answer_lang[msgs[-1]["content"]]] += 1
        turns[sum(m["role"] == "user" for m in msgs)] += 1
        system += msgs[0]["role"] == "system"
        replied: set[str] = set()
        for m in msgs:
            if m["role"] == "assistant":
                lang = answer_lang[m["content"]]
                replies[(lang, topic_of[(m["content"], lang)])] += 1
                replied.add(group(topic_of[(m["content"], lang)]))
        groups.update(replied)
    asked = Counter((e["lang"], e["topic"]) for e in evals)
    size = {k: path.stat().st_size for k, path in paths.items()}
    print(f"train: {len(train)} conversations, {size['train']:,} bytes -> {paths['train']}")
    print("  by language: " + ", ".join(f"{k} {v}" for k, v in sorted(convs.items())))
    print("  by user turns: " + ", ".join(f"{k}: {v}" for k, v in sorted(turns.items())))
    print(f"  with a system message: {system}")
    print(
        "  with a reply of group: "
        + ", ".join(f"{g} {n} ({n / len(train):.1%})" for g, n in sorted(groups.items()))
    )
    print(f"eval: {len(evals)} questions, {size['eval']:,} bytes -> {paths['eval']}")
    for lang in LANGS:
        print(f"  {lang}: {sum(v for (lg, _), v in asked.items() if lg == lang)}")
    by_group = Counter(e["group"] for e in evals)
    print("  by group: " + ", ".join(f"{g} {n}" for g, n in sorted(by_group.items())))
    print(f"{'topic':<20} {'replies en/zh':>14} {'eval en/zh':>11}")
    for t in LANGS["en"]:
        r = f"{replies[('en', t.id)]}/{replies[('zh', t.id)]}"
        e = f"{asked[('en', t.id)]}/{asked[('zh', t.id)]}"
        print(f"{t.id:<20} {r:>14} {e:>11}")
    print(f"{len(LANGS['en'])} topics per language")
    return 0


if __name__ == "__main__":
    sys.exit(main())
