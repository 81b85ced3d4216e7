"""Per-cell diagnostics of a training stack: top singular values, spectra, sublayer gains.

docs/science.md §5. For every matrix-like block weight (q k v o gate up down of every
block) of every cell of a stack:

* the **sublayer gain** ||W x||_rms / ||x||_rms, measured at each evaluation point on a
  fixed evaluation batch through forward hooks that exist only while that batch runs
  (training steps never see them);
* **sigma_max** at the end of training (and, in ``full`` mode, at every evaluation point);
* the full sorted **spectrum** at the end, kept compactly as float16 in ``spectra.npz``
  next to the cell's record.

Each is also aggregated per matrix type, averaged over blocks. The result for cell k is a
JSON-able dict (``Recorder.record(k)``) stored under ``diagnostics`` in its record, plus
the spectrum arrays (``Recorder.spectra(k)``).

A user's model (``model.factory``, a ``lwscale.model.user.UserStack``) has no q ... down: its
matrices are the parameters shape inference calls matrix-like, its types come from their
names (``user_types``), and its gains from hooks on the modules owning those weights.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from lwscale.model.config import MATRIX_TYPES, matrix_type, user_types
from lwscale.model.transformer import StackedLinear
from lwscale.model.user import UserStack, flat_name
from lwscale.training.result import SPECTRA_FILE


def _finite(fn, weight: torch.Tensor) -> torch.Tensor:
    """fn of each matrix, NaN for a matrix with non-finite entries (a diverged cell)
    instead of an SVD that fails to converge."""
    w = weight.detach().float()
    ok = torch.isfinite(w).flatten(-2).all(-1)
    out = fn(torch.where(ok[..., None, None], w, torch.zeros_like(w)))
    ok = ok.reshape(tuple(ok.shape) + (1,) * (out.dim() - ok.dim()))
    return torch.where(ok, out, torch.full_like(out, float("nan")))


def sigma_max(weight: torch.Tensor) -> torch.Tensor:
    """Top singular value of a matrix [out, in] or of each of a stack [K, out, in]."""
    return _finite(lambda w: torch.linalg.matrix_norm(w, ord=2), weight)


def spectrum(weight: torch.Tensor) -> torch.Tensor:
    """Singular values, sorted descending, of a matrix or of each matrix of a stack."""
    return _finite(torch.linalg.svdvals, weight)


def gain(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||y||_rms / ||x||_rms per cell for stacked activations x [K, N, in], y [K, N, out]."""
    rms = lambda t: t.detach().float().pow(2).flatten(1).mean(1).sqrt()  # noqa: E731
    return rms(y) / rms(x)


def _stack_of(weight: torch.Tensor) -> torch.Tensor:
    """A stacked weight as [K, out, in] (a user's higher-dimensional weight flattened)."""
    return weight.flatten(2) if weight.dim() > 3 else weight


def to_host(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """The tensors (one dtype) on the host, in one device-to-host copy (one sync) for all."""
    if not tensors:
        return []
    flat = torch.cat([t.reshape(-1) for t in tensors]).cpu()
    return [part.view(t.shape) for part, t in zip(flat.split([t.numel() for t in tensors]), tensors)]


def _on_host(curves: dict[str, list]) -> dict[str, list]:
    """{name: [value per step]} with every tensor value on the host, in one copy."""
    cells = [(n, i) for n, vals in curves.items() for i, v in enumerate(vals) if torch.is_tensor(v)]
    out = {n: list(vals) for n, vals in curves.items()}
    for (n, i), v in zip(cells, to_host([curves[n][i] for n, i in cells])):
        out[n][i] = v
    return out


def by_type(values: dict[str, float], type_of=matrix_type, types=MATRIX_TYPES) -> dict[str, float]:
    """Mean over blocks per matrix type ('q' ... 'down', or ``types`` with ``type_of``) of
    {parameter name: value}."""
    groups: dict[str, list[float]] = defaultdict(list)
    for name, v in values.items():
        t = type_of(name)
        if t is not None:
            groups[t].append(v)
    return {t: float(np.mean(groups[t])) for t in types if t in groups}


def normalise_mode(mode) -> str:
    """The spec's ``train.diagnostics`` as 'off', 'on' or 'full'."""
    if mode is False or mode is None:
        return "off"
    return "full" if mode == "full" else "on"


class Recorder:
    """Collects the diagnostics of one stacked model during ``loop.train_stack``.

    ``at_eval(step)`` at every evaluation point (hooks on, one forward of the fixed batch,
    hooks off); ``at_end()`` once after training, when the weights are final. Each call moves
    its results to the host in one copy. An ``at_eval`` after ``at_end`` (train_stack's last
    evaluation) reuses the end's singular values for ``full`` mode's sigma_max curve instead
    of a second SVD of the same weights.
    """

    def __init__(self, model: torch.nn.Module, tokens: torch.Tensor, mode="on", autocast=None):
        self.model, self.mode = model, normalise_mode(mode)
        self.tokens = tokens  # [B, T] fixed evaluation batch, shared by every cell
        self.autocast = autocast
        self.user = isinstance(model, UserStack)  # a user's model (model.factory)
        if self.user:
            self._user_matrices(model)
        else:
            self.weights = {n: p for n, p in model.named_parameters() if matrix_type(n) is not None}
            self.linears = {
                f"{n}.weight": m
                for n, m in model.named_modules()
                if isinstance(m, StackedLinear) and matrix_type(f"{n}.weight") is not None
            }
            self.type_of, self.types = matrix_type, MATRIX_TYPES
        self.K = next(iter(self.weights.values())).shape[0] if self.weights else 0
        self.steps: list[int] = []
        self.gains: dict[str, list[torch.Tensor]] = defaultdict(list)  # name -> [K] per eval
        self.sigma_curve: dict[str, list[torch.Tensor]] = defaultdict(list)
        self.final_sigma: dict[str, torch.Tensor] = {}
        self.final_spectra: dict[str, torch.Tensor] = {}

    def _user_matrices(self, stack) -> None:
        """A UserStack's matrix-like parameters (its ``param_infos``), under their dotted
        names, and the modules owning them as their own parameter (gain hooks)."""
        matrix = {i.name for i in stack.param_infos if i.cls == "matrix"}
        names = [n for n in stack.names if flat_name(n) in matrix]
        self.weights = {n: getattr(stack, flat_name(n)) for n in names}
        modules = dict(stack.module.named_modules())
        self.linears = {}
        for n in names:
            owner = n.rpartition(".")[0]  # "" for a parameter of the root module
            if owner in modules:
                self.linears[n] = modules[owner]
        types = user_types(names)
        self.type_of, self.types = types.get, tuple(dict.fromkeys(types.values()))

    def _forward(self, idx: torch.Tensor) -> None:
        if self.user:
            self.model.output(idx)  # the user's module (any output; it is not needed)
        else:
            self.model.hidden(idx)

    @property
    def enabled(self) -> bool:
        return self.mode != "off" and bool(self.weights)

    @torch.no_grad()
    def at_eval(self, step: int) -> None:
        if not self.enabled:
            return
        seen: dict[str, torch.Tensor] = {}

        def hook(name):
            def fn(module, inputs, output):
                x = inputs[0] if inputs else None
                if not (torch.is_tensor(x) and x.is_floating_point() and torch.is_tensor(output)):
                    return  # a module whose input is not an activation (e.g. tokens)
                if self.user:  # the user's module runs unstacked: one cell, K = 1
                    x, output = x.reshape(1, -1, x.shape[-1]), output.reshape(1, -1, output.shape[-1])
                seen[name] = gain(x, output)

            return fn

        handles = [m.register_forward_hook(hook(n)) for n, m in self.linears.items()]
        try:
            idx = self.tokens.unsqueeze(0).expand(self.K, *self.tokens.shape)
            with self.autocast() if self.autocast else torch.no_grad():
                self._forward(idx)
        finally:
            for h in handles:
                h.remove()
        self.steps.append(step)
        curve = self.mode == "full" and not self.final_sigma  # after at_end: its sigma_max, below
        sigmas = [sigma_max(_stack_of(w)) for w in self.weights.values()] if curve else []
        host = to_host(list(seen.values()) + sigmas)
        for name, g in zip(seen, host):
            self.gains[name].append(g)
        if curve:
            for name, sig in zip(self.weights, host[len(seen) :]):
                self.sigma_curve[name].append(sig)
        elif self.mode == "full":
            for name, sig in self.final_sigma.items():
                self.sigma_curve[name].append(sig)

    @torch.no_grad()
    def at_end(self) -> None:
        if not self.enabled:
            return
        spectra = to_host([spectrum(_stack_of(w)) for w in self.weights.values()])  # [K, min(out, in)], descending
        for name, s in zip(self.weights, spectra):
            self.final_spectra[name] = s
            self.final_sigma[name] = s[:, 0]  # = sigma_max(w): matrix_norm(ord=2) is the top of svdvals

    # ---- checkpointing: the curves gathered so far travel in the stack's loop state --------
    def state(self) -> dict:
        return {"steps": list(self.steps), "gains": dict(self.gains), "sigma_curve": dict(self.sigma_curve)}

    def load_state(self, state: dict) -> None:
        """The curves of ``state()``, back on the host: a checkpoint loaded onto the training
        device brings its tensors there (map_location), which would cost the records a sync each."""
        self.steps = list(state["steps"])
        self.gains, self.sigma_curve = (defaultdict(list, _on_host(state[key])) for key in ("gains", "sigma_curve"))

    # ---- per-cell results ----------------------------------------------------------------
    def record(self, k: int) -> dict | None:
        """The ``diagnostics`` entry of cell k's record (None when off)."""
        if not self.enabled:
            return None
        gains = {n: [float(v[k]) for v in vals] for n, vals in self.gains.items()}
        types = lambda values: by_type(values, self.type_of, self.types)  # noqa: E731
        gain_by_type = self._per_step_by_type(
            gains, [t for t in self.types if any(self.type_of(n) == t for n in gains)]
        )
        sig = {n: float(v[k]) for n, v in self.final_sigma.items()}
        out = {
            "mode": self.mode,
            "eval_batch": {"sequences": int(self.tokens.shape[0]), "seq_len": int(self.tokens.shape[1])},
            "gain": {"steps": list(self.steps), "by_matrix": gains, "by_type": gain_by_type},
            "sigma_max": {"final": sig, "by_type": types(sig)},
            "spectra": SPECTRA_FILE if self.final_spectra else None,
        }
        if self.sigma_curve:
            curve = {n: [float(v[k]) for v in vals] for n, vals in self.sigma_curve.items()}
            out["sigma_max"]["curve"] = {
                "steps": list(self.steps),
                "by_type": self._per_step_by_type(curve, types(sig)),
            }
        return out

    def _per_step_by_type(self, values: dict[str, list[float]], types) -> dict[str, list[float]]:
        """{type: [block mean at each evaluation step]} of {matrix: [value at each step]},
        for ``types``; each step's block means computed once for every type."""
        steps = [
            by_type({n: v[i] for n, v in values.items()}, self.type_of, self.types) for i in range(len(self.steps))
        ]
        return {t: [at[t] for at in steps] for t in types}

    def spectra(self, k: int) -> dict[str, np.ndarray]:
        """Cell k's sorted singular values per matrix, float16."""
        return {n: s[k].numpy().astype(np.float16) for n, s in self.final_spectra.items()}
