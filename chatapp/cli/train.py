"""``chatapp train``: train a tokenizer and a model on your text or conversations, or rebuild
a model from a recipe file (``chatapp train --recipe assets/recipes/guide.toml``).

Runs as one process, or data-parallel under ``torchrun --nproc_per_node N -m chatapp train``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from chatapp.cli import error

# Option name -> (recipe table, type); the CLI flag is the name with "-" for "_".
OPTIONS: dict[str, tuple[str, type]] = {
    "preset": ("model", str),
    "vocab_size": ("model", int),
    "isolate_cjk": ("model", bool),
    "context": ("model", int),
    "base": ("model", str),
    "val_fraction": ("data", float),
    "loss_on_prompt": ("data", bool),
    "steps": ("train", int),
    "batch_size": ("train", int),
    "micro_batch": ("train", int),
    "lr": ("train", float),
    "min_lr_ratio": ("train", float),
    "warmup": ("train", int),
    "weight_decay": ("train", float),
    "grad_clip": ("train", float),
    "eval_every": ("train", int),
    "eval_rows": ("train", int),
    "patience": ("train", int),
    "seed": ("train", int),
    "precision": ("train", str),
    "save_dtype": ("train", str),
}
# What each option does, for ``chatapp train --help`` (defaults are the trainer's own).
HELP: dict[str, str] = {
    "preset": "model size: nano (tests), tiny (~5M parameters), small (~30M), base (~100M)",
    "vocab_size": "tokenizer vocabulary size",
    "isolate_cjk": "keep each Chinese character its own token (no merges across them)",
    "context": "context length in tokens (default: the preset's)",
    "base": "continue this model (a name or folder), reusing its tokenizer",
    "val_fraction": "share of the data held out for validation",
    "loss_on_prompt": "count the loss on user turns too, not only the assistant's",
    "steps": "optimizer steps (1000)",
    "batch_size": "rows per optimizer step, across all processes (32)",
    "micro_batch": "rows per forward/backward on one process, accumulated (8)",
    "lr": "peak learning rate (1e-3)",
    "min_lr_ratio": "the cosine decay ends at lr times this (0.1)",
    "warmup": "warmup steps (100)",
    "weight_decay": "AdamW weight decay (0.1)",
    "grad_clip": "gradient norm clip (1.0)",
    "eval_every": "steps between validation runs (100)",
    "eval_rows": "validation rows per evaluation (256)",
    "patience": "stop after this many evaluations without improvement (0: never)",
    "seed": "random seed: the same seed gives the same run (0)",
    "precision": "auto (bf16 autocast on a GPU), fp32 or bf16",
    "save_dtype": "dtype of the saved weights (float32)",
}
CHOICES: dict[str, tuple[str, ...]] = {
    "preset": ("nano", "tiny", "small", "base"),  # engine.train.presets.PRESETS (no torch)
    "precision": ("auto", "fp32", "bf16"),
}
SPEC_FIELDS = (
    "preset",
    "vocab_size",
    "isolate_cjk",
    "context",
    "base",
    "val_fraction",
    "loss_on_prompt",
)


def register(subs: Any, parser: argparse.ArgumentParser) -> None:
    p = subs.add_parser(
        "train",
        help="train a model on your text or conversations",
        description="Train a byte-level BPE tokenizer and a Llama-style model from scratch (or "
        "continue a base model) on plain text (--text) and/or JSONL conversations (--chat, loss on "
        "the assistant's replies). The result is saved as a model you can chat with. "
        "Data-parallel: torchrun --nproc_per_node N -m chatapp train ...",
    )
    p.add_argument("--recipe", type=Path, metavar="FILE", help="a TOML recipe (flags override it)")
    p.add_argument("--name", help="save as <data dir>/models/NAME (default: the recipe's name)")
    p.add_argument("--out", type=Path, metavar="DIR", help="save into DIR instead")
    p.add_argument(
        "--text", type=Path, nargs="+", default=[], metavar="PATH", help=".txt files or folders"
    )
    p.add_argument(
        "--chat", type=Path, nargs="+", default=[], metavar="FILE", help="JSONL conversations"
    )
    p.add_argument("--eval", type=Path, metavar="FILE", help="JSONL key-fact questions to score")
    p.add_argument("--export", type=Path, metavar="DIR", help="also copy the model into DIR")
    p.add_argument("--resume", action="store_true", help="continue the saved run")
    p.add_argument("--force", action="store_true", help="replace an existing model of that name")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    for name, (_, kind) in OPTIONS.items():
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            p.add_argument(flag, action="store_true", default=None, help=HELP[name])
        else:
            p.add_argument(flag, type=kind, default=None, choices=CHOICES.get(name),
                           help=HELP[name])  # fmt: skip
    p.set_defaults(func=cmd_train)


def read_recipe(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"cannot read recipe {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"recipe {path} is not valid TOML ({e})") from None
    return data


def settings(args: argparse.Namespace, recipe: dict[str, Any]) -> dict[str, Any]:
    """Recipe values overridden by the flags given on the command line."""
    out: dict[str, Any] = {}
    for name, (table, kind) in OPTIONS.items():
        value = getattr(args, name)
        if value is None:
            value = recipe.get(table, {}).get(name)
        if value is not None:
            try:
                out[name] = kind(value)
            except (TypeError, ValueError):
                raise ValueError(f"recipe: {table}.{name} must be a {kind.__name__}") from None
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from engine.errors import ModelLoadError
    from engine.train import DataError

    try:
        return _train(args)
    except (ValueError, DataError, ModelLoadError, OSError) as e:
        return error(str(e).splitlines()[0] if str(e) else type(e).__name__)


def _train(args: argparse.Namespace) -> int:
    import torch

    from engine.paths import models_dir
    from engine.train import TrainConfig, TrainSpec, train

    recipe = read_recipe(args.recipe) if args.recipe else {}
    base_dir = args.recipe.resolve().parent if args.recipe else Path.cwd()
    opts = settings(args, recipe)
    name = args.name or recipe.get("name")
    if args.out is None and not name:
        raise ValueError("name the model: --name NAME (or --out DIR)")
    out = args.out or models_dir() / str(name)
    if name and ("/" in str(name) or "\\" in str(name) or str(name).startswith(".")):
        raise ValueError(f"bad model name {name!r}: no path separators or leading dots")
    rank = int(os.environ.get("RANK", "0"))
    if out.exists() and not (args.resume or args.force):
        raise ValueError(f"{out} exists: pass --resume to continue it or --force to replace it")

    data = recipe.get("data", {})
    chat = list(args.chat) + [base_dir / p for p in data.get("chat", [])]
    text = list(args.text) + [base_dir / p for p in data.get("text", [])]
    eval_file = args.eval or (base_dir / data["eval"] if "eval" in data else None)
    if data.get("generator"):
        gen_train, gen_eval = generate_corpus(
            str(data["generator"]), int(data.get("seed", 0)), out, rank, data.get("options", {})
        )
        chat.append(gen_train)
        eval_file = eval_file or gen_eval

    spec_kw = {k: opts.pop(k) for k in SPEC_FIELDS if k in opts}
    metadata = {"recipe": str(args.recipe)} if args.recipe else {}
    config = TrainConfig(**opts, metadata=metadata)
    spec = TrainSpec(out=out, text=text, chat=chat, resume=args.resume, config=config, **spec_kw)
    if args.force and out.exists() and rank == 0 and not args.resume:
        import shutil

        shutil.rmtree(out)

    display = Display(enabled=rank == 0 and not args.json)
    with display:
        result = train(spec, on_event=display.event)
    if rank != 0:
        return 0
    summary: dict[str, Any] = {
        "model": str(out),
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "tokens": result.tokens,
        "best_val_loss": round(result.best_val_loss, 4),
        "train_loss": round(result.train_loss, 4),
        "parameters": display.info.get("parameters"),
        "stopped_early": result.stopped_early,
        "threads": torch.get_num_threads(),
        "isolate_cjk": bool(spec.isolate_cjk),
        "data": describe_data(data, chat, text, bool(spec.loss_on_prompt)),
    }
    if recipe.get("description"):
        summary["description"] = str(recipe["description"]).strip()
    if eval_file is not None and Path(eval_file).is_file():
        summary["eval"] = run_eval(out, Path(eval_file), recipe.get("eval", {}), quiet=args.json)
    export = args.export or (base_dir / recipe["export"] if "export" in recipe else None)
    if export is not None:
        from chatapp.models.card import export_model

        export_model(out, Path(export), summary, recipe_path=args.recipe)
        summary["exported"] = str(export)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(f"saved {out} (best validation loss {result.best_val_loss:.4f})")
        for lang, s in summary.get("eval", {}).get("scores", {}).items():
            print(f"eval {lang}: {s['passed']}/{s['total']} ({s['score']:.0%})")
        for group, langs in summary.get("eval", {}).get("groups", {}).items():
            for lang, s in langs.items():
                print(f"eval {group} {lang}: {s['passed']}/{s['total']} ({s['score']:.0%})")
        if export is not None:
            print(f"exported to {export}")
    return 0


def describe_data(
    data: dict[str, Any], chat: list[Path], text: list[Path], loss_on_prompt: bool
) -> str:
    loss = (
        "the loss counts every token of the conversations (the validation loss the assistant's)"
        if loss_on_prompt
        else "the loss counts the assistant's tokens only"
    )
    if data.get("generator"):
        options = ", ".join(f"{k}={v}" for k, v in data.get("options", {}).items())
        return (
            f"conversations written by `{data['generator']}` (seed {data.get('seed', 0)}"
            f"{', ' + options if options else ''}, deterministic); {loss}"
        )
    parts = [f"conversations from {', '.join(p.name for p in chat)}"] if chat else []
    parts += [f"text from {', '.join(p.name for p in text)}"] if text else []
    return "; ".join(parts)


def generate_corpus(
    module: str, seed: int, out: Path, rank: int, options: dict[str, Any]
) -> tuple[Path, Path]:
    """Run a recipe's corpus generator (``write_corpus(dir, seed, **options)``) into a work
    folder."""
    import importlib

    from engine.paths import data_dir

    work = data_dir() / "train-data" / f"{out.name}-{seed}-rank{rank}"
    paths = importlib.import_module(module).write_corpus(work, seed=seed, **options)
    return Path(paths["train"]), Path(paths["eval"])


def run_eval(out: Path, eval_file: Path, opts: dict[str, Any], quiet: bool) -> dict[str, Any]:
    import engine
    from engine.train.evaluate import key_fact_eval, read_eval_items

    items = read_eval_items(eval_file)
    if not quiet:
        print(f"evaluating {len(items)} questions…", file=sys.stderr)
    model = engine.load(out, dtype="float32")
    report = key_fact_eval(model, items, max_new_tokens=int(opts.get("max_new_tokens", 96)))
    (out / "eval_failures.jsonl").write_text(
        "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in report.failures),
        encoding="utf-8",
    )
    result: dict[str, Any] = {"file": str(eval_file), "scores": report.as_dict()}
    groups = report.groups_dict()
    if groups:  # the eval file names groups of questions (the guide's: facts, offtopic, ...)
        result["groups"] = groups
    return result


class Display:
    """A Rich progress bar (step, loss, validation loss, tokens/s, ETA) on a terminal; a
    line per evaluation otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.info: dict[str, Any] = {}
        self.val = "–"
        self.progress: Any = None
        self.task: Any = None

    def __enter__(self) -> Display:
        from rich.console import Console

        console = Console(stderr=True)
        if self.enabled and console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("step {task.completed}/{task.total}"),
                BarColumn(),
                TextColumn("loss {task.fields[loss]}  val {task.fields[val]}"),
                TextColumn("{task.fields[tps]} tok/s"),
                TimeRemainingColumn(),
                console=console,
            )
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def event(self, e: dict[str, Any]) -> None:
        kind = e["kind"]
        if kind == "start":
            self.info = e
            if self.enabled:
                print(
                    f"training {e['parameters'] / 1e6:.2f}M parameters, vocab {e['vocab_size']}, "
                    f"{e['train_rows']} rows of {e['context']} tokens "
                    f"({e['train_tokens']} target tokens), {e['val_rows']} validation rows",
                    file=sys.stderr,
                )
            return
        if not self.enabled:
            return
        if kind == "eval":
            # The last evaluation and the best one: the run ends on the best (it is what is
            # saved), which may be an earlier one.
            self.val = f"{e['val_loss']:.4f} (best {e['best_val_loss']:.4f})"
            if self.progress is None:
                print(
                    f"step {e['step']}: validation loss {e['val_loss']:.4f} "
                    f"(best {e['best_val_loss']:.4f})",
                    file=sys.stderr,
                    flush=True,
                )
        elif kind == "step" and self.progress is not None:
            if self.task is None:
                self.task = self.progress.add_task(
                    "train", total=e["steps"], loss="–", val=self.val, tps="–"
                )
            self.progress.update(
                self.task,
                completed=e["step"],
                loss=f"{e['smooth_loss']:.4f}",
                val=self.val,
                tps=f"{e['tokens_per_s']:,.0f}",
            )
