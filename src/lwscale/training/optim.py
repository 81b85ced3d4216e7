"""AdamW over K stacked cells, each with its own lr and wd per parameter group.

Per step, for each cell k (matching ``torch.nn.utils.clip_grad_norm_`` followed by
``torch.optim.AdamW`` run on that cell alone):

    g_k   <- g_k * min(1, clip / (||g_k|| + 1e-6))       ||g_k|| over all of cell k's params
    p_k   <- p_k * (1 - lr_k * wd_k)                      coupled (PyTorch-style) decay
    m, v  <- Adam moments;  p_k <- p_k - lr_k / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)

with lr_k = lr_peak_k * schedule(t). A cell whose loss or gradient norm goes non-finite
(or that the caller reports unhealthy) is frozen: its lr becomes 0 and its gradient is
zeroed, so its weights stop changing while the other cells go on untouched. Nothing here
syncs with the host: the alive mask and the step each cell died at stay on the device.
"""

from __future__ import annotations

import torch

from lwscale.model.params import Group


def _cells(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """View a [K] tensor so that it broadcasts over a stacked [K, ...] parameter."""
    return x.view(-1, *([1] * (p.dim() - 1)))


class StackedAdamW:
    def __init__(
        self,
        groups: list[Group],
        k: int,
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-8,
        max_grad_norm: float | None = 1.0,
    ):
        self.groups = groups
        self.K = k
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.max_grad_norm = max_grad_norm
        self.params = [p for g in groups for p in g.params]
        if len(set(map(id, self.params))) != len(self.params):
            raise ValueError("a parameter appears in two groups: weight decay would be applied twice")
        device = self.params[0].device
        for g in groups:
            if g.lr.shape != (k,) or g.wd.shape != (k,):
                raise ValueError(f"group {g.name}: lr and wd must have shape [{k}]")
            g.lr, g.wd = g.lr.to(device, torch.float32), g.wd.to(device, torch.float32)
        self._group_of = [i for i, g in enumerate(groups) for _ in g.params]
        self._update = _update
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.t = 0
        # step count and schedule factor live on the device and are refilled each step: fill_
        # passes the value as a kernel argument, where torch.tensor(x, device=cuda) would copy
        # from pageable memory and synchronise the stream every step
        self._t_dev = torch.zeros((), device=device)
        self._scale_dev = torch.ones((), device=device)
        self.alive = torch.ones(k, dtype=torch.bool, device=device)
        self.died_at = torch.full((k,), -1, dtype=torch.long, device=device)
        self.last_grad_norm = torch.zeros(k, device=device)

    def grad_norms(self) -> torch.Tensor:
        """Per-cell L2 norm of all gradients, [K] fp32."""
        return _grad_norms([p.grad for p in self.params if p.grad is not None], self.K, self.alive.device)

    @torch.no_grad()
    def step(self, lr_scale: float = 1.0, healthy: torch.Tensor | None = None) -> None:
        """One AdamW step with the schedule factor ``lr_scale`` (same for all cells).

        ``healthy`` [K] bool marks cells whose loss is fine; a cell not healthy, or with a
        non-finite gradient norm, is frozen from this step on.
        """
        self.t += 1
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        if healthy is None:
            healthy = torch.ones_like(self.alive)
        # schedule factor and step count go in as tensors, so a compiled update never recompiles
        self._t_dev.fill_(float(self.t))
        self._scale_dev.fill_(float(lr_scale))
        self.alive, self.died_at, self.last_grad_norm = self._update(
            self.params,
            grads,
            self.exp_avg,
            self.exp_avg_sq,
            [g.lr for g in self.groups],
            [g.wd for g in self.groups],
            self._group_of,
            self.alive,
            self.died_at,
            healthy,
            self._t_dev,
            self._scale_dev,
            self.beta1,
            self.beta2,
            self.eps,
            self.max_grad_norm,
        )

    def compile(self) -> StackedAdamW:
        """Fuse the update with torch.compile (one compile per parameter layout; the GPU
        fast path: a few fused kernels instead of several launches per parameter)."""
        self._update = torch.compile(_update, fullgraph=True, dynamic=False)
        return self

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    # ---- checkpointing ----------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "t": self.t,
            "exp_avg": self.exp_avg,
            "exp_avg_sq": self.exp_avg_sq,
            "alive": self.alive,
            "died_at": self.died_at,
            "lr": [g.lr for g in self.groups],
            "wd": [g.wd for g in self.groups],
        }

    def load_state_dict(self, state: dict) -> None:
        self.t = int(state["t"])
        for dst, src in zip(self.exp_avg + self.exp_avg_sq, state["exp_avg"] + state["exp_avg_sq"]):
            dst.copy_(src)
        self.alive.copy_(state["alive"])
        self.died_at.copy_(state["died_at"])
        for g, lr, wd in zip(self.groups, state["lr"], state["wd"]):
            g.lr.copy_(lr)
            g.wd.copy_(wd)


def _grad_norms(grads: list[torch.Tensor], K: int, device) -> torch.Tensor:
    sq = torch.zeros(K, device=device)
    for g in grads:
        sq = sq + g.float().pow(2).flatten(1).sum(1)
    return sq.sqrt()


def _update(
    params,
    grads,
    exp_avgs,
    exp_avg_sqs,
    lrs,
    wds,
    group_of,
    alive,
    died_at,
    healthy,
    t,
    lr_scale,
    beta1: float,
    beta2: float,
    eps: float,
    max_grad_norm: float | None,
):
    """The stacked AdamW update, a pure function of tensors (so torch.compile can fuse it).
    Returns the new (alive, died_at, grad_norm)."""
    K = alive.shape[0]
    norm = _grad_norms(grads, K, alive.device)
    ok = torch.isfinite(norm) & healthy
    died_at = torch.where(alive & ~ok, t.to(died_at.dtype), died_at)
    alive = alive & ok
    if max_grad_norm is not None:
        coef = (max_grad_norm / (norm + 1e-6)).clamp(max=1.0)
    else:
        coef = torch.ones_like(norm)
    coef = torch.where(alive, coef, torch.zeros_like(coef))  # frozen cells get no gradient
    # per-group, per-cell factors: lr 0 for frozen cells
    lr = [g_lr * lr_scale * alive.float() for g_lr in lrs]
    decay = [1.0 - lr_g * wd_g for lr_g, wd_g in zip(lr, wds)]
    bc1 = 1.0 - beta1**t
    bc2_sqrt = (1.0 - beta2**t).sqrt()
    neg_step = [-lr_g / bc1 for lr_g in lr]

    grads = [(g * _cells(coef, g)).nan_to_num_(0.0, 0.0, 0.0) for g in grads]
    for p, gi in zip(params, group_of):
        p.mul_(_cells(decay[gi], p))  # coupled weight decay, as torch.optim.AdamW
    torch._foreach_lerp_(exp_avgs, grads, 1.0 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1.0 - beta2)
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denom, bc2_sqrt)
    torch._foreach_add_(denom, eps)
    for p, m, d, gi in zip(params, exp_avgs, denom, group_of):
        p.addcdiv_(m * _cells(neg_step[gi], p), d)
    return alive, died_at, norm
