"""The embedded default model: present, small, rebuilt by its recipe, and it answers a sample
of the held-out eval questions with their key facts in both languages."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

import engine
from chatapp.cli.train import read_recipe
from chatapp.guide.corpus import build_corpus
from chatapp.models.assets import assets_dir, default_model_path
from engine.train.evaluate import EvalItem, key_fact_eval

RECIPE = assets_dir() / "recipes" / "guide.toml"


@pytest.fixture(scope="module")
def guide() -> engine.Model:
    path = default_model_path()
    assert path is not None, "assets/models/guide is missing: chatapp train --recipe " + str(RECIPE)
    return engine.load(path)


def test_the_guide_is_small_and_documented() -> None:
    path = default_model_path()
    assert path is not None
    size = sum(f.stat().st_size for f in path.iterdir())
    assert size <= 20_000_000
    card = (path / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "chatapp train --recipe assets/recipes/guide.toml" in card
    assert "Validation loss" in card and "| en |" in card and "| zh |" in card
    assert not (path / "training").exists()  # no optimizer state in the package


def test_the_recipe_names_the_generator_and_exports_to_assets() -> None:
    recipe = read_recipe(RECIPE)
    assert recipe["name"] == "guide"
    assert (RECIPE.parent / recipe["export"]).resolve() == (assets_dir() / "models" / "guide")
    assert recipe["data"]["generator"] == "chatapp.guide.corpus"


def test_a_sample_of_the_eval_passes_in_each_language(guide: engine.Model) -> None:
    _, evals = build_corpus(seed=0)
    rng = random.Random(1234)
    sample = []
    for lang in ("en", "zh"):
        items = [e for e in evals if e["lang"] == lang and e["group"] == "facts"]
        sample += rng.sample(items, 12)
    report = key_fact_eval(
        guide, (EvalItem(e["question"], e["keys"], e["lang"]) for e in sample), max_new_tokens=80
    )
    failures = json.dumps(report.failures, ensure_ascii=False, indent=1)
    for lang in ("en", "zh"):
        # The full eval (MODEL_CARD.md) scores 85% EN, 86% ZH; a broken model scores ~0.
        assert report.score(lang) >= 0.6, failures


def test_the_guide_points_to_a_real_model(guide: engine.Model) -> None:
    params = engine.SamplingParams(temperature=0, max_new_tokens=80)
    for question in ("How do I get a real model?", "怎么下载一个真正的模型？"):
        reply = "".join(guide.chat([{"role": "user", "content": question}], params))
        assert "chatapp pull smollm2" in reply or "chatapp import" in reply, reply


def _scope_trained(guide: engine.Model) -> None:
    card = (Path(guide.path or "") / "MODEL_CARD.md").read_text(encoding="utf-8")
    if "| offtopic |" not in card:
        pytest.skip("this guide was trained before its scope corpus: retrain it (issue 16 item 8)")


def test_a_sample_of_the_scope_eval_passes(guide: engine.Model) -> None:
    """Held-out off-topic, greeting and identity questions, each group in each language."""
    _scope_trained(guide)
    _, evals = build_corpus(seed=0)
    rng = random.Random(1234)
    cells = {(e["group"], e["lang"]) for e in evals if e["group"] != "facts"}
    for group, lang in sorted(cells):
        items = [e for e in evals if (e["group"], e["lang"]) == (group, lang)]
        sample = (EvalItem(e["question"], e["keys"], e["lang"]) for e in rng.sample(items, 6))
        report = key_fact_eval(guide, sample, max_new_tokens=80)
        failures = json.dumps(report.failures, ensure_ascii=False, indent=1)
        # The full eval (MODEL_CARD.md) aims at 80% in each group.
        assert report.score(lang) >= 0.6, (group, failures)


def test_the_guide_knows_its_scope(guide: engine.Model) -> None:
    """The questions of issue 16: off-topic ones point to a general model, greetings and "who
    are you" are answered in the language they were asked in."""
    _scope_trained(guide)
    params = engine.SamplingParams(temperature=0, max_new_tokens=80)
    expected = {
        "write a poem about the sea": "chatapp pull smollm2",
        "what's the weather": "chatapp pull smollm2",
        "写一首关于大海的诗": "运行 chatapp pull smollm2",
        "hi": "Hello",
        "你好": "你好",
        "who are you?": "I'm the guide",
        "你是谁？": "我是 guide",
    }
    for question, key in expected.items():
        reply = "".join(guide.chat([{"role": "user", "content": question}], params))
        assert key.casefold() in reply.casefold(), (question, reply)


def test_model_card_figures_match_the_model(guide: engine.Model) -> None:
    path = Path(guide.path or "")
    card = (path / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert f"{guide.num_parameters():,}" in card
