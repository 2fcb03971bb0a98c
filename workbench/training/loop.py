"""The training loop. It knows nothing about the model beyond `model(tokens) -> logits`.

Everything else (evaluation, checkpoints, progress, attention patching, probes) plugs in as a
`Callback`, so new features need no edits here. Step s means "after s optimizer updates"; the
update from s to s+1 uses `data.train_batch(s)`, a pure function of (seed, s).

The loop is asynchronous on a GPU: the training loss stays on the device (summed there in float64, exactly
as the host used to sum it) and is read only when a callback asks for it (an evaluation, a checkpoint), so
the host queues step s+1 while the device runs step s; batches are built ahead on a background thread
(`train.prefetch`), padded to a multiple of `train.pad_multiple` (few distinct shapes), pinned, and copied
with non_blocking=True. None of this changes a CPU run's numbers.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from workbench.config import TrainConfig
from workbench.metrics import next_token_loss


class Callback:
    """Hooks into the loop; `state.step` is the number of updates done when each is called."""

    def on_train_start(self, state: TrainState) -> None: ...
    def on_step_start(self, state: TrainState) -> None: ...
    def on_step_end(self, state: TrainState) -> None: ...
    def on_train_end(self, state: TrainState) -> None: ...


@dataclass
class TrainState:
    """The loop's state. `loss` (the last step's training loss) and `loss_sum` (summed since the last
    evaluation, exact on resume) live on the device; reading either is a host read (`host_reads` counts them)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    data: Any  # BiographyData
    config: Any  # RunConfig
    step: int = 0
    loss_count: int = 0
    last_metrics: dict = field(default_factory=dict)
    stop: bool = False
    host_reads: int = 0  # host reads of the loss (each one a device sync on a GPU)
    _loss_total: Any = 0.0  # a float, or a 0-d float64 tensor on the device
    _last_loss: Any = None

    def record_loss(self, loss: torch.Tensor) -> None:
        """Add a step's loss to the running sum, on the device (no host read)."""
        loss = loss.detach()
        self._last_loss = loss
        total = self._loss_total
        if not torch.is_tensor(total):
            total = torch.tensor(total, dtype=torch.float64, device=loss.device)
        # float32 -> float64, then a float64 add: bit for bit what `sum += loss.item()` gave on the host
        self._loss_total = total + loss.to(torch.float64)
        self.loss_count += 1

    @property
    def loss(self) -> float:
        if self._last_loss is None:
            return math.nan
        self.host_reads += 1
        return self._last_loss.item()

    @property
    def loss_sum(self) -> float:
        if not torch.is_tensor(self._loss_total):
            return float(self._loss_total)
        self.host_reads += 1
        return self._loss_total.item()

    @loss_sum.setter
    def loss_sum(self, value: float) -> None:
        self._loss_total = float(value)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: str = "cpu") -> torch.optim.AdamW:
    """AdamW (docs/method.md §3); no weight decay on biases and LayerNorm parameters (standard practice).
    On CUDA the fused kernel (one launch for all parameters)."""
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = {"fused": True} if device == "cuda" else {}
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **fused)


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Cosine from `lr` to `final_lr` over the run without warm-up, or constant."""
    if cfg.schedule == "constant":
        return cfg.lr
    return cfg.final_lr + 0.5 * (cfg.lr - cfg.final_lr) * (1 + math.cos(math.pi * step / cfg.steps))


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device='cuda' but no CUDA device is available: allowed auto | cpu")
    return name


def resolve_precision(cfg: TrainConfig, device: str) -> torch.dtype | None:
    """The autocast dtype of `train.precision` on `device` (None: fp32); a one-line ValueError naming the field
    when the device cannot run it."""
    p = cfg.precision
    if device != "cuda":
        if p not in ("auto", "fp32"):
            raise ValueError(
                f"train.precision={p!r} is out of range on {device}: allowed auto | fp32 "
                f"(bf16 and fp16 are the CUDA path)"
            )
        return None
    bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    if p == "bf16" and not bf16:
        raise ValueError(
            f"train.precision='bf16' is out of range on {torch.cuda.get_device_name()} (no bf16): "
            f"allowed auto | fp16 | fp32"
        )
    if p == "auto":
        return torch.bfloat16 if bf16 else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[p]


def autocast(device: str, dtype: torch.dtype | None):
    """The mixed-precision context of a resolved precision (nothing for fp32)."""
    return torch.autocast(device, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def check_compile(cfg: TrainConfig, device: str) -> None:
    """`train.compile` is the CUDA path: on CPU it is refused (one line naming the field). Measured on 2 shared
    cores (analysis/NOTES.md): 77 s to compile the tiny model's step, and slower steps than eager afterwards."""
    if cfg.compile and device != "cuda":
        raise ValueError(
            f"train.compile=True is out of range on {device}: allowed false (torch.compile does not "
            f"pay on CPU: minutes of compilation for no faster step; use it with --device cuda)"
        )


def configure_device(cfg: TrainConfig, device: str) -> None:
    """Process-wide settings of a run on `device`: TF32 matmuls (train.tf32) on CUDA."""
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
        torch.backends.cudnn.allow_tf32 = cfg.tf32
        torch.set_float32_matmul_precision("high" if cfg.tf32 else "highest")


def pad_multiple(cfg: TrainConfig, device: str) -> int:
    """`train.pad_multiple`, with 0 resolved: 8 on CUDA (few distinct shapes), 1 on CPU (unpadded, as before)."""
    return cfg.pad_multiple or (8 if device == "cuda" else 1)


def padded(batch, multiple: int, n_ctx: int, pad_id: int):
    """`batch` right-padded to a multiple of `multiple` positions, never past `n_ctx` (the model's context)."""
    from workbench.data.batch import Batch
    from workbench.data.kinds import PAD

    t = batch.tokens.shape[1]
    target = -(-t // multiple) * multiple
    if n_ctx:
        target = min(target, max(n_ctx, t))
    if target == t:
        return batch
    fill = {"tokens": pad_id, "kind": PAD, "attribute": -1, "value_start": False}

    def pad(name, x):
        if name not in fill:
            return x
        return torch.cat([x, torch.full((x.shape[0], target - t), fill[name], dtype=x.dtype)], 1)

    return Batch(**{name: None if x is None else pad(name, x) for name, x in vars(batch).items()})


class BatchPrefetcher:
    """The training batches of steps start, start+1, ... built ahead on a background thread (`depth` at most),
    padded and, on CUDA, pinned; `get(step)` puts one on the device (non_blocking). Each batch is still
    `make(step)`: a pure function of (seed, step). depth 0: built on the calling thread."""

    def __init__(self, make: Callable[[int], Any], start: int, end: int, depth: int, device: str):
        self.make, self.device, self.depth = make, device, depth
        self.pin = device == "cuda"
        self.stopping = threading.Event()
        self.queue: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self.thread = None
        if depth > 0 and start < end:
            self.thread = threading.Thread(target=self._work, args=(start, end), name="batch-prefetch", daemon=True)
            self.thread.start()

    def _build(self, step: int):
        batch = self.make(step)
        return batch._map(lambda x: x.pin_memory()) if self.pin else batch

    def _work(self, start: int, end: int) -> None:
        for step in range(start, end):
            try:
                item = (step, self._build(step))
            except BaseException as e:  # handed to the training thread, which raises it
                item = (step, e)
            while not self.stopping.is_set():
                try:
                    self.queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if self.stopping.is_set() or isinstance(item[1], BaseException):
                return

    def get(self, step: int):
        if self.thread is None:
            batch = self._build(step)
        else:
            got, batch = self.queue.get()
            if isinstance(batch, BaseException):
                raise batch
            if got != step:
                raise RuntimeError(f"batch prefetch out of order: step {got} arrived for step {step}")
        return batch.to(self.device, non_blocking=self.pin)

    def close(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            while self.thread.is_alive():
                try:
                    self.queue.get(timeout=0.05)
                except queue.Empty:
                    pass
            self.thread = None


def compiled(model: torch.nn.Module) -> Callable:
    """The model's forward under torch.compile (its parameters shared, its state dict unchanged)."""
    return torch.compile(model)


def train_loop(
    state: TrainState, callbacks: list[Callback], device: str, loss_fn: Callable = next_token_loss, n_ctx: int = 0
) -> TrainState:
    """Run updates from `state.step` to `config.train.steps`, calling the callbacks around each.
    `n_ctx`: the model's context length (padding never goes past it)."""
    cfg = state.config.train
    dtype = resolve_precision(cfg, device)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    forward = compiled(state.model) if cfg.compile else state.model
    multiple = pad_multiple(cfg, device)
    pad_id = state.data.tokenizer.pad_id if multiple > 1 else 0

    def make(step: int):
        batch = state.data.train_batch(step)
        return padded(batch, multiple, n_ctx, pad_id) if multiple > 1 else batch

    state.model.train()
    for cb in callbacks:
        cb.on_train_start(state)
    batches = BatchPrefetcher(make, state.step, cfg.steps, cfg.prefetch, device)
    try:
        while state.step < cfg.steps and not state.stop:
            for cb in callbacks:
                cb.on_step_start(state)
            batch = batches.get(state.step)
            for group in state.optimizer.param_groups:
                group["lr"] = learning_rate(cfg, state.step)
            with autocast(device, dtype):
                logits = forward(batch.tokens)
            loss = loss_fn(logits, batch)
            state.optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.grad_clip)
                state.optimizer.step()
            else:  # fp16: scaled gradients (the scaler's inf check reads the device once per step)
                scaler.scale(loss).backward()
                if cfg.grad_clip > 0:
                    scaler.unscale_(state.optimizer)
                    torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.grad_clip)
                scaler.step(state.optimizer)
                scaler.update()
            state.step += 1
            state.record_loss(loss)
            for cb in callbacks:
                cb.on_step_end(state)
    finally:
        batches.close()
    for cb in callbacks:
        cb.on_train_end(state)
    return state
