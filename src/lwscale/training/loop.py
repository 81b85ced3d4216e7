"""The training loop for one stack of K same-width cells (K = 1 is a single cell).

Each step: the batch of every cell (cells sharing a seed share it), one forward of the
stacked model giving K losses, one backward of their sum (the cells' graphs are disjoint),
and one StackedAdamW step with per-cell clipping and freezing. A cell whose loss goes
non-finite or above ``diverge_factor`` x its initial loss is frozen and recorded as
diverged with its step, while the others go on. The host syncs only at log and eval points.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field, fields, replace
from typing import Callable

import numpy as np
import torch

from lwscale.core import faults
from lwscale.core.errors import UserError
from lwscale.data.dataset import Dataset
from lwscale.model.params import classify_model, stack_groups
from lwscale.model.transformer import build
from lwscale.model.user import build_user_stack
from lwscale.science.schedule import lr_factor
from lwscale.sweep.plan import Cell, model_flops_per_token
from lwscale.sweep.spec import Spec
from lwscale.training.optim import StackedAdamW
from lwscale.training.perf import device_name, peak_flops, throughput
from lwscale.training.recorder import Recorder
from lwscale.training.result import CellResult

ProgressFn = Callable[[int, int, list[float]], None]


def resolve_device(name: str = "auto") -> torch.device:
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)
    if dev.type == "cuda" and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls outside autocast use TF32
        torch.backends.cudnn.allow_tf32 = True
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"train.device is {name!r} but CUDA is not available here; use device: auto or cpu")
    return dev


def resolve_precision(spec: Spec, device: torch.device) -> str:
    p = spec.train.precision
    return ("bf16" if device.type == "cuda" else "fp32") if p == "auto" else p


def resolve_compile(spec: Spec, device: torch.device) -> bool:
    c = spec.train.compile
    on = device.type == "cuda" if c == "auto" else bool(c)
    if on:
        # one compiled graph per (width, K) and mode: a sweep has more than dynamo's default 8
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    return on


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class Batcher:
    """[K, B, T+1] token batches for a stack: cells with the same seed share one copy."""

    def __init__(self, dataset: Dataset, seeds: list[int], device: torch.device):
        self.dataset, self.seeds, self.device = dataset, seeds, device
        self.unique = sorted(set(seeds))
        self.index = torch.tensor([self.unique.index(s) for s in seeds], device=device)
        self.pin = device.type == "cuda"

    def _to_device(self, arr: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(arr).astype(np.int64))
        if self.pin:
            t = t.pin_memory()
        return t.to(self.device, non_blocking=True)

    def train(self, step: int) -> torch.Tensor:
        batches = np.stack([self.dataset.train_batch(s, step) for s in self.unique])
        t = self._to_device(batches)  # [S, B, T+1]
        K = len(self.seeds)
        return t.expand(K, *t.shape[1:]) if len(self.unique) == 1 else t[self.index]


@torch.no_grad()
def evaluate(model: torch.nn.Module, val: torch.Tensor, K: int, batch_size: int, device, precision) -> torch.Tensor:
    """Mean validation loss of each cell over the fixed held-out set, [K] fp32 on device."""
    total = torch.zeros(K, device=device)
    n = val.shape[0]
    for i in range(0, n, batch_size):
        chunk = val[i : i + batch_size]
        idx = chunk.unsqueeze(0).expand(K, *chunk.shape)
        with autocast(device, precision):
            total += model(idx[..., :-1], idx[..., 1:]).float() * chunk.shape[0]
    return total / n


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module):
    """``model`` in eval mode inside the block, in training mode again after it."""
    model.eval()
    try:
        yield model
    finally:
        model.train()


def build_with_classes(cfg, spec: Spec, seeds: list[int], device: torch.device):
    """The stacked model of ``cfg`` and its parameter classes; a spec's ``model.factory``
    gives the user's model instead (K = 1, lwscale.model.user)."""
    if spec.model.factory:
        return build_user_stack(spec, cfg, seeds, device)
    model = build(cfg, seeds=seeds, device=device)
    return model, classify_model(model, spec.model.unembed_class)


@dataclass
class LoopState:
    """The loop variables a checkpoint saves and a resumed stack restores, each by its name
    (a checkpoint's ``loop`` dict; plain data and tensors, as ``torch.load(weights_only=True)``
    reads them). A field added here without a default must be passed wherever the state is
    made, and reading a dict without it raises KeyError naming it, never fills another field
    (bump ``lwscale.training.checkpoint.VERSION`` with the fields; a checkpoint that lacks one is set
    aside by ``StackCheckpoint.restore`` anyway, and the stack starts over)."""

    step: int  # optimizer steps done
    train_curve: list  # per cell: [step, tokens, loss] so far
    val_curve: list
    initial: torch.Tensor | None  # [K] train loss at step 0
    window: torch.Tensor  # [K] sum of train losses since the last log point
    window_n: int
    last_finite: torch.Tensor  # [K] last finite train loss
    last_train: list  # per cell: the last logged train loss
    elapsed: float = 0.0  # seconds of training before the save
    diagnostics: dict = field(default_factory=dict)  # Recorder.state()

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # shallow: asdict would deep-copy tensors

    @classmethod
    def from_dict(cls, state: dict) -> LoopState:
        return cls(**{f.name: state[f.name] for f in fields(cls)})


@dataclass
class Stack:
    """What the build phase makes for one stack: the cells' shared settings, the stacked model
    (``fwd`` is the compiled module where the spec compiles), its optimizer, the batches and the
    validation set, and the diagnostics recorder."""

    cells: list[Cell]
    spec: Spec
    device: torch.device
    precision: str
    steps: int
    warmup: int
    eval_interval: int
    tokens_per_step: int  # per cell: batch size x sequence length
    model: torch.nn.Module
    fwd: Callable
    opt: StackedAdamW
    batcher: Batcher
    val: torch.Tensor
    eval_bs: int
    recorder: Recorder

    @property
    def K(self) -> int:
        return len(self.cells)


def train_stack(
    cells: list[Cell],
    spec: Spec,
    dataset: Dataset,
    device: torch.device,
    on_progress: ProgressFn | None = None,
    checkpoint=None,
) -> list[CellResult]:
    """Train ``cells`` as one stacked model and return what each cell measured, in order. With a
    ``checkpoint`` (lwscale.training.checkpoint.StackCheckpoint) the stack resumes from its saved
    state and saves it as the spec asks. Four phases: build, restore (or evaluate step 0), the
    step loop, the results."""
    stack = build_stack(cells, spec, dataset, device)
    state, t0 = restore_or_start(stack, checkpoint)
    wall = run_steps(stack, state, t0, on_progress, checkpoint)
    return stack_results(stack, state, wall)


def build_stack(cells: list[Cell], spec: Spec, dataset: Dataset, device: torch.device) -> Stack:
    """The stacked model of ``cells`` (one seed each), its per-cell optimizer groups and AdamW,
    compiled where the spec asks, the batches, the validation set and the recorder."""
    first = cells[0]
    if any(c.stack_key() != first.stack_key() for c in cells):
        raise ValueError("cells of one stack must share the model, steps and warmup")
    K = len(cells)
    t_spec, o_spec = spec.train, spec.optimizer
    precision = resolve_precision(spec, device)
    cfg = replace(first.model, n_stack=K)
    model, infos = build_with_classes(cfg, spec, [c.seed for c in cells], device)
    groups = stack_groups(model, infos, [c.rule_hparams for c in cells], o_spec.wd_mode, spec.model.vector_lr_mult)
    opt = StackedAdamW(groups, K, betas=tuple(o_spec.betas), eps=o_spec.eps, max_grad_norm=t_spec.grad_clip)
    fwd = model
    if resolve_compile(spec, device):
        fwd, opt = torch.compile(model), opt.compile()
    val = torch.from_numpy(dataset.val.astype(np.int64)).to(device)
    eval_bs = max(t_spec.batch_size, 1)
    return Stack(
        cells=cells,
        spec=spec,
        device=device,
        precision=precision,
        steps=first.steps,
        warmup=first.warmup,
        eval_interval=spec.eval_interval_at(first.horizon_ratio),  # as many evaluations at every horizon
        tokens_per_step=t_spec.batch_size * first.model.seq_len,
        model=model,
        fwd=fwd,
        opt=opt,
        batcher=Batcher(dataset, [c.seed for c in cells], device),
        val=val,
        eval_bs=eval_bs,
        recorder=Recorder(model, val[:eval_bs, :-1], t_spec.diagnostics, lambda: autocast(device, precision)),
    )


def record_eval(stack: Stack, state: LoopState, step: int) -> torch.Tensor:
    """Evaluate every cell at ``step``, append it to the validation curves; the [K] losses."""
    # a user's model may have dropout: off for evaluation (ours has none, and a mode switch
    # would only give its compiled graph a second variant)
    with eval_mode(stack.model) if stack.spec.model.factory else contextlib.nullcontext():
        v = evaluate(stack.fwd, stack.val, stack.K, stack.eval_bs, stack.device, stack.precision).cpu()
        stack.recorder.at_eval(step)
    for k in range(stack.K):
        state.val_curve[k].append([step, step * stack.tokens_per_step, float(v[k])])
    return v


def restore_or_start(stack: Stack, checkpoint) -> tuple[LoopState, float]:
    """The loop state to start from, and the time origin of the stack's wall clock: the
    checkpoint's (its elapsed time carried over), or a fresh state after evaluating step 0
    (not counted in the wall time)."""
    K, device = stack.K, stack.device
    resumed = (
        checkpoint.restore(stack.model, stack.opt, device, [f.name for f in fields(LoopState)])
        if checkpoint is not None
        else None
    )
    state = LoopState(
        step=0,
        train_curve=[[] for _ in range(K)],
        val_curve=[[] for _ in range(K)],
        initial=None,
        window=torch.zeros(K, device=device),
        window_n=0,
        last_finite=torch.full((K,), float("nan"), device=device),
        last_train=[math.nan] * K,
    )
    if resumed is None:
        record_eval(stack, state, 0)
    t0 = time.perf_counter()
    if resumed is not None:  # the loop state a checkpoint saved (run_steps' saved())
        state = LoopState.from_dict(resumed)
        t0 -= state.elapsed
        stack.recorder.load_state(state.diagnostics)
    return state, t0


def run_steps(stack: Stack, state: LoopState, t0: float, on_progress: ProgressFn | None, checkpoint) -> float:
    """The step loop from ``state.step`` to the end, then the final evaluation's diagnostics;
    ``state`` is updated in place. Returns the wall time of training in seconds."""
    K, device, opt, t_spec = stack.K, stack.device, stack.opt, stack.spec.train
    steps, first = stack.steps, stack.cells[0]

    def saved() -> dict:  # what a checkpoint keeps
        return replace(state, elapsed=time.perf_counter() - t0, diagnostics=stack.recorder.state()).to_dict()

    for step in range(state.step, steps):
        nan_cells = faults.at_step(step, first.width, K, first.seed)
        tokens = stack.batcher.train(step)
        with autocast(device, stack.precision):
            loss = stack.fwd(tokens[..., :-1], tokens[..., 1:]).float()
        if nan_cells:
            loss = loss + torch.tensor([math.nan if k in nan_cells else 0.0 for k in range(K)], device=device)
        if state.initial is None:
            state.initial = loss.detach().clone()
        healthy = torch.isfinite(loss) & (loss <= t_spec.diverge_factor * state.initial)
        loss.sum().backward()
        was_alive = opt.alive.clone()
        opt.step(lr_factor(step, steps, stack.warmup, t_spec.schedule, t_spec.min_lr_ratio, t_spec.decay_frac), healthy)
        opt.zero_grad()
        lv = loss.detach()
        state.last_finite = torch.where(was_alive & torch.isfinite(lv), lv, state.last_finite)
        state.window += torch.where(opt.alive, lv, torch.zeros_like(lv))
        state.window_n += 1
        done = state.step = step + 1
        if done % t_spec.log_interval == 0 or done == steps:
            w = (state.window / state.window_n).cpu()
            alive = opt.alive.cpu()
            for k in range(K):
                if alive[k]:
                    state.last_train[k] = float(w[k])
                    state.train_curve[k].append([done, done * stack.tokens_per_step, float(w[k])])
            state.window.zero_()
            state.window_n = 0
            if on_progress:
                on_progress(done, steps, [state.last_train[k] if alive[k] else math.nan for k in range(K)])
        if done % stack.eval_interval == 0 and done != steps:
            record_eval(stack, state, done)
        if checkpoint is not None:
            checkpoint.after_step(done, steps, stack.model, opt, saved)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def stack_results(stack: Stack, state: LoopState, wall: float) -> list[CellResult]:
    """What each cell measured (its record's fields, docs/records.md), after the final evaluation."""
    t_spec, device, steps, first = stack.spec.train, stack.device, stack.steps, stack.cells[0]
    stack.recorder.at_end()  # first: the last evaluation's sigma_max (full mode) reuses its SVDs
    final_val = record_eval(stack, state, steps)
    died_at = stack.opt.died_at.cpu().tolist()
    init = state.initial.cpu().tolist()
    last_finite = state.last_finite.cpu().tolist()
    fpt = model_flops_per_token(stack.spec, first.model)
    perf = throughput(steps * stack.tokens_per_step, wall, fpt, stack.K, peak_flops(device, stack.precision))
    recorder = stack.recorder
    results = []
    for k in range(stack.K):
        diverged = died_at[k] >= 0
        results.append(
            CellResult(
                reason=f"loss non-finite or above {t_spec.diverge_factor}x initial at step {died_at[k]}"
                if diverged
                else None,
                initial_loss=init[k],
                final_val_loss=None if diverged else float(final_val[k]),
                final_train_loss=None if diverged else state.last_train[k],
                diverged_step=died_at[k] if diverged else None,
                last_finite_loss=last_finite[k] if diverged else None,
                tokens=steps * stack.tokens_per_step,
                tokens_per_s=perf["tokens_per_s"],
                tflops=perf["tflops"],
                mfu=perf["mfu"],
                device_name=device_name(device),
                flops_per_token=fpt,
                wall_s=wall,
                stack_size=stack.K,
                device=str(device),
                precision=stack.precision,
                torch_version=torch.__version__,
                curves={"train": state.train_curve[k], "val": state.val_curve[k]},
                diagnostics=recorder.record(k) if recorder.enabled else None,
                spectra=recorder.spectra(k) if recorder.enabled else None,
            )
        )
    return results


def time_steps(
    cfg, spec: Spec, device: torch.device, k: int = 1, steps: int = 3, warmup: int = 1, forward: bool = False
) -> float | tuple[float, float]:
    """Seconds per training step of a stack of ``k`` cells of ``cfg``, on random tokens
    (for the dry-run estimate and for choosing K). With ``forward``, also the seconds of one
    evaluation forward pass (no gradients) of the same [k, batch] tokens: (step, forward)."""
    cfg = replace(cfg, n_stack=k)
    model, infos = build_with_classes(cfg, spec, [0] * k, device)
    groups = stack_groups(model, infos, [("sqrt-wd", 1e-3, 0.1)] * k)
    opt = StackedAdamW(groups, k, max_grad_norm=spec.train.grad_clip)
    fwd = model
    if resolve_compile(spec, device):
        fwd, opt = torch.compile(model), opt.compile()
    precision = resolve_precision(spec, device)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, cfg.vocab_size, (1, spec.train.batch_size, cfg.seq_len + 1), generator=g)
    tokens = tokens.to(device).expand(k, -1, -1)

    def one() -> None:
        with autocast(device, precision):
            loss = fwd(tokens[..., :-1], tokens[..., 1:]).float()
        loss.sum().backward()
        opt.step(1.0)
        opt.zero_grad()

    def timed(fn) -> float:
        for _ in range(warmup):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - t0) / steps

    step_s = timed(one)
    if not forward:
        return step_s

    @torch.no_grad()
    def fwd_only() -> None:
        with autocast(device, precision):
            fwd(tokens[..., :-1], tokens[..., 1:]).float()

    return step_s, timed(fwd_only)


def peak_step_memory(cfg, spec: Spec, device: torch.device, k: int) -> int:
    """Peak CUDA memory (bytes) of one training step of a K-cell stack, measured."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    time_steps(cfg, spec, device, k=k, steps=1, warmup=0)
    peak = torch.cuda.max_memory_allocated(device) - base
    torch.cuda.empty_cache()
    return int(peak)
