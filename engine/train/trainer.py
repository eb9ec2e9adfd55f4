"""The training loop: AdamW with decay groups, warmup then cosine decay, gradient clipping and
accumulation, periodic validation keeping the best checkpoint, exact resume, and data
parallelism under ``torchrun`` (DDP: gloo on CPU, NCCL on GPU).

Every process holds all the (small, pre-tokenized) rows and draws the same seeded global
batch each step; process r trains on rows r, r+W, r+2W... of it. The loss is a sum over the
target tokens divided by the number of target tokens in the *global* batch, so gradients are
the same whatever the number of processes or micro-batches.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import engine.train.checkpoint as checkpoint
from engine.model import Transformer
from engine.tokenizer import Tokenizer
from engine.train.data import Rows, batches
from engine.train.distributed import Dist

Event = dict[str, Any]


@dataclass
class TrainConfig:
    """How to train; every field has a sensible default for a small model on a CPU."""

    steps: int = 1000
    batch_size: int = 32  # rows per optimizer step, across all processes
    micro_batch: int = 8  # rows per forward/backward on one process (accumulated)
    lr: float = 1e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr * this
    warmup: int = 100
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    eval_every: int = 100
    eval_rows: int = 256  # validation rows evaluated each time (all when fewer)
    patience: int = 0  # stop after this many evaluations without improvement (0 = never)
    seed: int = 0
    save_dtype: str = "float32"  # dtype of the saved best weights
    precision: str = "auto"  # "auto" (bf16 autocast on GPU), "fp32", "bf16"
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "micro_batch", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0 < self.lr < 1:
            raise ValueError("lr must be in (0, 1)")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError("precision must be auto, fp32 or bf16")


@dataclass
class TrainResult:
    steps: int
    best_val_loss: float
    last_val_loss: float
    train_loss: float
    tokens: int
    seconds: float
    stopped_early: bool


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to ``lr``, then cosine decay to ``lr * min_lr_ratio`` at the last step."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    span = max(1, cfg.steps - cfg.warmup)
    progress = min(1.0, (step - cfg.warmup) / span)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(net: nn.Module, cfg: TrainConfig, fused: bool) -> torch.optim.AdamW:
    """AdamW with weight decay on the matrices (linear and embedding weights) only; norms
    and biases are not decayed."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in net.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, fused=fused or None)


def masked_loss_sum(net: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of next-token cross-entropy over the positions ``mask`` selects."""
    logits = net(ids[:, :-1])
    targets = ids[:, 1:].masked_fill(~mask[:, 1:], -100)
    return F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        ignore_index=-100,
        reduction="sum",
    )


class Trainer:
    """Trains ``net`` on ``train_rows``, checking ``val_rows``, saving into ``out``."""

    def __init__(
        self,
        net: Transformer,
        tokenizer: Tokenizer,
        train_rows: Rows,
        val_rows: Rows,
        cfg: TrainConfig,
        out: Path,
        *,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        if cfg.batch_size < 1 or len(train_rows) < 1:
            raise ValueError("no training rows")
        self.dist = Dist.from_env()
        if cfg.batch_size % self.dist.world:
            raise ValueError(
                f"batch_size {cfg.batch_size} must be a multiple of the {self.dist.world} processes"
            )
        self.cfg, self.out, self.tokenizer = cfg, Path(out), tokenizer
        self.train_rows, self.val_rows = train_rows, val_rows
        self.on_event = on_event if self.dist.rank == 0 else None
        self.device = self.dist.device
        self.net = net.to(self.device).float()
        self.net.rope_cos = self.net.rope_sin = None  # regrown for the device and dtype
        self.model: nn.Module = self.dist.wrap(self.net)
        self.opt = make_optimizer(self.net, cfg, fused=self.device.type == "cuda")
        self.step = 0
        self.best_val = math.inf
        self.tokens = 0
        self.evals_without_gain = 0

    # -- state --------------------------------------------------------------------------

    def resume(self) -> None:
        """Continue from the training state saved in ``out`` (weights, optimizer, step)."""
        state = checkpoint.load_training_state(self.out, self.net, self.opt, self.device)
        self.step = int(state["step"])
        self.best_val = float(state["best_val_loss"])
        self.tokens = int(state.get("tokens", 0))
        self.evals_without_gain = int(state.get("evals_without_gain", 0))

    def _save(self, improved: bool) -> None:
        if self.dist.rank == 0:
            state = {
                "step": self.step,
                "best_val_loss": self.best_val,
                "tokens": self.tokens,
                "evals_without_gain": self.evals_without_gain,
                "config": asdict(self.cfg),
            }
            checkpoint.save(
                self.out,
                self.net,
                self.tokenizer,
                self.opt,
                state,
                best=improved,
                save_dtype=self.cfg.save_dtype,
                metadata=self.cfg.metadata,
            )
        self.dist.barrier()

    # -- loop ---------------------------------------------------------------------------

    def _autocast(self) -> Any:
        p = self.cfg.precision
        if p == "bf16" or (p == "auto" and self.device.type == "cuda"):
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def train_step(self, idx: torch.Tensor) -> float:
        """One optimizer step on the global batch ``idx``; returns the mean token loss."""
        cfg, rows = self.cfg, self.train_rows
        global_tokens = max(1, int(rows.mask[idx, 1:].sum()))
        mine = idx[self.dist.rank :: self.dist.world]
        micro = [mine[i : i + cfg.micro_batch] for i in range(0, len(mine), cfg.micro_batch)]
        for g in self.opt.param_groups:
            g["lr"] = lr_at(self.step, cfg)
        self.opt.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        for i, m in enumerate(micro):
            ids = rows.ids[m].to(self.device)
            mask = rows.mask[m].to(self.device)
            sync = i == len(micro) - 1
            with self.dist.no_sync(self.model, not sync), self._autocast():
                loss_sum = masked_loss_sum(self.model, ids, mask)
            # DDP averages gradients over processes: scale by the world to get the sum.
            (loss_sum * (self.dist.world / global_tokens)).backward()
            total += loss_sum.detach()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.grad_clip)
        self.opt.step()
        self.tokens += idx.numel() * (rows.ids.shape[1] - 1)  # tokens processed
        return self.dist.sum(total) / global_tokens

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean token loss on (up to ``eval_rows`` of) the validation rows."""
        rows = self.val_rows
        n = min(len(rows), self.cfg.eval_rows)
        if n == 0:
            return math.nan
        self.net.eval()
        loss = torch.zeros((), device=self.device)
        mine = torch.arange(n)[self.dist.rank :: self.dist.world]
        for i in range(0, len(mine), self.cfg.micro_batch):
            m = mine[i : i + self.cfg.micro_batch]
            with self._autocast():
                loss += masked_loss_sum(
                    self.net, rows.ids[m].to(self.device), rows.mask[m].to(self.device)
                )
        self.net.train()
        tokens = int(rows.mask[:n, 1:].sum())
        return self.dist.sum(loss) / max(1, tokens)

    def run(self) -> TrainResult:
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        self.net.train()
        start_step, start_tokens, t0 = self.step, self.tokens, time.perf_counter()
        last_val, loss, stopped = math.nan, math.nan, False
        ema: float | None = None
        order = batches(self.train_rows, cfg.batch_size, cfg.seed, start_step=self.step)
        while self.step < cfg.steps:
            loss = self.train_step(next(order))
            self.step += 1
            ema = loss if ema is None else 0.9 * ema + 0.1 * loss
            elapsed = time.perf_counter() - t0
            done = self.step - start_step
            self._emit(
                kind="step",
                step=self.step,
                steps=cfg.steps,
                loss=loss,
                smooth_loss=ema,
                lr=lr_at(self.step - 1, cfg),
                tokens_per_s=(self.tokens - start_tokens) / max(elapsed, 1e-9),
                elapsed=elapsed,
                eta=elapsed / done * (cfg.steps - self.step),
            )
            if self.step % cfg.eval_every == 0 or self.step == cfg.steps:
                last_val = self.evaluate()
                improved = not math.isnan(last_val) and last_val < self.best_val
                if improved:
                    self.best_val, self.evals_without_gain = last_val, 0
                else:
                    self.evals_without_gain += 1
                self._save(improved or math.isnan(last_val))
                self._emit(
                    kind="eval", step=self.step, val_loss=last_val, best_val_loss=self.best_val
                )
                if cfg.patience and self.evals_without_gain >= cfg.patience:
                    stopped = True
                    break
        return TrainResult(
            steps=self.step,
            best_val_loss=self.best_val,
            last_val_loss=last_val,
            train_loss=ema if ema is not None else loss,
            tokens=self.tokens,
            seconds=time.perf_counter() - t0,
            stopped_early=stopped,
        )

    def _emit(self, **event: Any) -> None:
        if self.on_event is not None:
            self.on_event(event)
