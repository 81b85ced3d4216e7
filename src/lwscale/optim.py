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

from dataclasses import dataclass

import torch


@dataclass
class Group:
    """Params sharing a per-cell (lr, wd): ``lr`` and ``wd`` are [K] tensors (coupled wd)."""

    name: str
    params: list[torch.nn.Parameter]
    lr: torch.Tensor
    wd: torch.Tensor


def _cells(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """View a [K] tensor so that it broadcasts over a stacked [K, ...] parameter."""
    return x.view(-1, *([1] * (p.dim() - 1)))


class StackedAdamW:
    def __init__(
        self,
        groups: list[Group],
        n_stack: int,
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-8,
        max_grad_norm: float | None = 1.0,
    ):
        self.groups = groups
        self.K = n_stack
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.max_grad_norm = max_grad_norm
        self.params = [p for g in groups for p in g.params]
        if len(set(map(id, self.params))) != len(self.params):
            raise ValueError("a parameter appears in two groups: weight decay would be applied twice")
        device = self.params[0].device
        for g in groups:
            if g.lr.shape != (n_stack,) or g.wd.shape != (n_stack,):
                raise ValueError(f"group {g.name}: lr and wd must have shape [{n_stack}]")
            g.lr, g.wd = g.lr.to(device, torch.float32), g.wd.to(device, torch.float32)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.t = 0
        self.alive = torch.ones(n_stack, dtype=torch.bool, device=device)
        self.died_at = torch.full((n_stack,), -1, dtype=torch.long, device=device)
        self.last_grad_norm = torch.zeros(n_stack, device=device)

    def grad_norms(self) -> torch.Tensor:
        """Per-cell L2 norm of all gradients, [K] fp32."""
        sq = torch.zeros(self.K, device=self.alive.device)
        for p in self.params:
            if p.grad is not None:
                sq = sq + p.grad.float().pow(2).flatten(1).sum(1)
        return sq.sqrt()

    @torch.no_grad()
    def step(self, lr_scale: float = 1.0, healthy: torch.Tensor | None = None) -> None:
        """One AdamW step with the schedule factor ``lr_scale`` (same for all cells).

        ``healthy`` [K] bool marks cells whose loss is fine; a cell not healthy, or with a
        non-finite gradient norm, is frozen from this step on.
        """
        self.t += 1
        norm = self.grad_norms()
        self.last_grad_norm = norm
        ok = torch.isfinite(norm) if healthy is None else torch.isfinite(norm) & healthy
        newly_dead = self.alive & ~ok
        self.died_at = torch.where(newly_dead, torch.full_like(self.died_at, self.t), self.died_at)
        self.alive &= ok
        alive = self.alive.float()
        if self.max_grad_norm is not None:
            coef = (self.max_grad_norm / (norm + 1e-6)).clamp(max=1.0)
        else:
            coef = torch.ones_like(norm)
        coef = torch.where(self.alive, coef, torch.zeros_like(coef))  # frozen cells get no gradient
        bc1 = 1.0 - self.beta1**self.t
        bc2_sqrt = (1.0 - self.beta2**self.t) ** 0.5
        i = 0
        for g in self.groups:
            lr = g.lr * (lr_scale * alive)  # [K]; 0 for frozen cells
            decay = 1.0 - lr * g.wd
            step_size = lr / bc1
            for p in g.params:
                m, v = self.exp_avg[i], self.exp_avg_sq[i]
                i += 1
                if p.grad is None:
                    continue
                grad = p.grad.mul(_cells(coef, p)).nan_to_num_(0.0, 0.0, 0.0)
                p.mul_(_cells(decay, p))
                m.lerp_(grad, 1.0 - self.beta1)
                v.mul_(self.beta2).addcmul_(grad, grad, value=1.0 - self.beta2)
                denom = (v.sqrt() / bc2_sqrt).add_(self.eps)
                p.addcdiv_(m * _cells(-step_size, p), denom)

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
