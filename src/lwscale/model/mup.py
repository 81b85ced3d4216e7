"""lwscale on your own ``nn.Module``: optimizer groups, the muP parametrization, and checks.

As microsoft/mup's ``set_base_shapes`` + ``MuAdamW`` do, everything works from two copies of
your model, one at the base (proxy) width and one at the width you train, and compares
parameter shapes (``lwscale.model.params``): a parameter with two dims that grow is matrix-like,
one with fewer is vector-like. Unlike ``MuAdamW``, the weight-decay rule is explicit:

    import torch, lwscale
    groups = lwscale.param_groups(model, base_model, rule="sqrt-wd", eta=3e-3, wd=0.1)
    print(groups.report)                       # which class each tensor got, and its (lr, wd)
    opt = torch.optim.AdamW(groups)            # per-class lr and (PyTorch-coupled) wd
    lwscale.check_optimizer(groups, opt)       # raises if weight decay would be applied twice

``apply_mup(model, base_model, readout="head")`` gives the model muP's parametrization
(hidden init rescaled by m^-1/2, a constant-scale readout with a 1/m output multiplier);
``check_mup`` lists what a model lacks of it (``lwscale coord-check`` reports these).
Errors a user can fix are ``APIError`` (a ``lwscale.core.errors.UserError``): one clear line.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from lwscale.core.errors import UserError
from lwscale.model.classes import ParamInfo, group_hparams, group_keys, report
from lwscale.model.params import ShapeError, classify
from lwscale.science.rules import DEFAULT_RULE, PRESETS, Rule, WdMode, custom, get_rule, optimizer_hparams, timescale  # noqa: F401 (re-exported)

__all__ = [  # lwscale/api.py re-exports these
    "APIError",
    "ParamGroups",
    "param_groups",
    "classify_params",
    "apply_mup",
    "check_mup",
    "check_optimizer",
    "scale_hparams",
    "PRESETS",
    "DEFAULT_RULE",
    "Rule",
    "custom",
    "get_rule",
    "timescale",
    "ParamInfo",
]

READOUT_ATTR = "lwscale_readout_mult"  # set on a readout module by apply_mup


class APIError(UserError, ValueError):
    """A model, rule or optimizer that lwscale cannot use as given; the message says why."""


# ---- plain numbers -------------------------------------------------------------------------
def scale_hparams(
    eta: float,
    wd: float,
    m: float,
    rule: str | Rule = DEFAULT_RULE,
    cls: str = "matrix",
    wd_mode: WdMode = "coupled",
    vector_lr_mult: float = 1.0,
    horizon: float = 1.0,
) -> tuple[float, float]:
    """(lr, torch.optim.AdamW weight_decay) of a ``cls`` parameter at width multiplier ``m``,
    from base coordinates (``eta``, ``wd``) at the base width; ``horizon`` is the training
    length over the base one, S/S0, which a rule with a horizon exponent scales by
    (docs/science.md §2).

    >>> scale_hparams(1e-3, 0.1, 4, "sqrt-wd")
    (0.00025, 0.2)
    >>> scale_hparams(1e-3, 0.1, 4, "sqrt-wd(h=1)", horizon=4)
    (0.00025, 0.05)
    """
    return optimizer_hparams(get_rule(rule), eta, wd, m, cls, wd_mode, vector_lr_mult, horizon)  # type: ignore[arg-type]


# ---- classification ------------------------------------------------------------------------
def classify_params(
    model: nn.Module,
    base_model: nn.Module,
    probe: nn.Module | None = None,
    overrides: dict[str, str] | None = None,
    need_scaling: bool = True,
) -> list[ParamInfo]:
    """Every parameter's class and width multiplier (see ``lwscale.model.params.classify``).

    ``probe`` is the model at a third width; it is needed when ``model`` has the base width,
    since then no dimension differs. Models may live on the meta device (shapes only).
    """
    try:
        infos = classify(model, base_model, probe=probe, overrides=overrides)
    except ShapeError as exc:
        raise APIError(str(exc)) from None
    if need_scaling and probe is None and not any(i.inf_dims for i in infos):
        raise APIError(
            "model and base_model have the same shapes, so no dimension is seen to grow with width: "
            "pass probe=<the model built at another width> to tell matrix-like from vector-like parameters"
        )
    return infos


class ParamGroups(list):
    """``torch.optim.AdamW`` param groups (a list of dicts) with a printable ``report``.

    Each group has ``params``, ``lr``, ``weight_decay`` (coupled: p <- p - lr*wd*p), a
    ``name`` ("vector" or "matrix(m=..)") and ``param_names``.
    """

    infos: list[ParamInfo]
    report: str
    rule: Rule

    def expected(self) -> dict[int, tuple[str, float, float]]:
        """id(param) -> (name, lr, wd) as these groups set them."""
        return {id(p): (n, g["lr"], g["weight_decay"]) for g in self for n, p in zip(g["param_names"], g["params"])}


def param_groups(
    model: nn.Module,
    base_model: nn.Module,
    rule: str | Rule = DEFAULT_RULE,
    eta: float = 1e-3,
    wd: float = 0.1,
    overrides: dict[str, str] | None = None,
    probe: nn.Module | None = None,
    wd_mode: WdMode = "coupled",
    vector_lr_mult: float = 1.0,
) -> ParamGroups:
    """AdamW param groups for ``model`` under ``rule``, from base coordinates (``eta``, ``wd``):
    the lr and weight decay you tuned at ``base_model``'s width.

    ``overrides`` maps name patterns (fnmatch) to "matrix" or "vector" for ambiguous tensors,
    e.g. ``{"lm_head.weight": "matrix"}``. Parameters with ``requires_grad=False`` are left out.
    """
    rule_obj = get_rule(rule)
    infos = classify_params(model, base_model, probe, overrides)
    params = dict(model.named_parameters())
    trainable = [i for i in infos if params[i.name].requires_grad]
    out = ParamGroups()
    lines = []
    for key, names in group_keys(trainable).items():
        lr, w = group_hparams(key, rule_obj, eta, wd, wd_mode, vector_lr_mult)
        out.append(
            {
                "params": [params[n] for n in names],
                "lr": lr,
                "weight_decay": w,
                "name": key.label(),
                "param_names": list(names),
            }
        )
        lines.append(f"{key.label():<16} lr {lr:.4g}  weight_decay {w:.4g}  ({len(names)} tensors)")
    frozen = len(infos) - len(trainable)
    out.infos, out.rule = infos, rule_obj
    out.report = (
        f"rule {rule_obj.label()}, base eta {eta:g}, base wd {wd:g} ({wd_mode} wd)\n"
        + report(infos)
        + "\n\n"
        + "\n".join(lines)
        + (f"\n({frozen} frozen tensors left out)" if frozen else "")
    )
    return out


# ---- optimizer check -----------------------------------------------------------------------
def check_optimizer(groups: ParamGroups, *optimizers: torch.optim.Optimizer, rtol: float = 1e-6) -> None:
    """Raise ``APIError`` if the optimizers would decay a parameter twice or by another amount
    than ``groups`` (from ``param_groups``) says: a parameter in two optimizers that both decay
    it, or a weight decay rescaled a second time (e.g. lwscale's groups given to mup's
    ``MuAdamW``, which multiplies matrix wd by m again)."""
    expected = groups.expected()
    seen: dict[int, list[tuple[str, float, float]]] = {}
    for i, opt in enumerate(optimizers):
        for j, g in enumerate(opt.param_groups):
            for p in g["params"]:
                seen.setdefault(id(p), []).append((f"optimizer {i} group {j}", g["lr"], g.get("weight_decay", 0.0)))
    for pid, places in seen.items():
        name = expected.get(pid, ("a parameter not in lwscale's groups", 0.0, 0.0))[0]
        decaying = [p for p in places if p[2] > 0]
        if len(decaying) > 1:
            raise APIError(
                f"weight decay applied twice: {name} is decayed by "
                + " and by ".join(f"{w} (wd {d:g})" for w, _, d in decaying)
            )
        if pid not in expected:
            continue
        _, lr_want, wd_want = expected[pid]
        where, lr_got, wd_got = places[0]
        if not math.isclose(wd_got, wd_want, rel_tol=rtol, abs_tol=0.0):
            hint = (
                f" (x{wd_got / wd_want:.4g}: scaled twice? lwscale's groups already carry the rule; "
                "give them to torch.optim.AdamW, not to mup's MuAdamW)"
                if wd_want > 0 and wd_got > 0
                else ""
            )
            raise APIError(f"weight decay of {name} in {where} is {wd_got:g}, but the rule gives {wd_want:g}{hint}")
        if not math.isclose(lr_got, lr_want, rel_tol=rtol):
            raise APIError(f"learning rate of {name} in {where} is {lr_got:g}, but the rule gives {lr_want:g}")


# ---- the muP parametrization ---------------------------------------------------------------
class ReadoutMultiplier:
    """A forward hook multiplying a readout's output by ``mult`` (picklable: survives torch.save)."""

    def __init__(self, mult: float):
        self.mult = float(mult)

    def __call__(self, module: nn.Module, args, output):
        return output * self.mult


def _readout_weight(model: nn.Module, readout: str) -> tuple[nn.Module, str]:
    try:
        module = model.get_submodule(readout)
    except AttributeError:
        raise APIError(f"readout={readout!r}: the model has no such module") from None
    if not isinstance(getattr(module, "weight", None), torch.Tensor):
        raise APIError(f"readout={readout!r}: the module has no weight (name the output nn.Linear)")
    return module, f"{readout}.weight" if readout else "weight"


def _std(p: torch.Tensor) -> float:
    return float(p.detach().float().std()) if p.numel() > 1 else 0.0


def _mup_std(info: ParamInfo, base_std: float, readout: bool) -> float | None:
    """muP's init std of a parameter, from the base model's: the readout keeps it, a hidden
    (matrix-like) weight has it x m^-1/2, m its fan-in ratio; None: any init is muP's."""
    if readout:
        return base_std
    if info.cls == "matrix":
        return base_std / math.sqrt(info.width_mult)
    return None


def _is_meta(*models: nn.Module) -> bool:
    return any(p.is_meta for m in models for p in m.parameters())


@torch.no_grad()
def apply_mup(model: nn.Module, base_model: nn.Module, readout: str, probe: nn.Module | None = None) -> nn.Module:
    """Give ``model`` muP's parametrization relative to ``base_model`` (both freshly
    initialised by the same code) and return it:

    * each hidden (matrix-like) weight is rescaled to the base model's init std x m^-1/2,
      m its fan-in ratio (already true of PyTorch's default fan-in init; not of a fixed std);
    * the readout (``readout``: the module mapping width to logits) keeps the base model's
      init std, and its output is multiplied by 1/m (a forward hook; parameter names,
      ``torch.save`` and ``torch.compile`` are unaffected).

    Call it once, right after building the model and before making the optimizer. On the
    meta device (shapes only, as lwscale builds models to classify them) only the multiplier
    is set.
    """
    shapes_only = _is_meta(model) and _is_meta(base_model)
    if _is_meta(model, base_model) and not shapes_only:
        raise APIError(
            "apply_mup needs both models initialised (or both on the meta device): "
            "it copies the base model's init scale"
        )
    module, rname = _readout_weight(model, readout)
    if hasattr(module, READOUT_ATTR):
        raise APIError(f"apply_mup was already applied to this model (readout {readout!r} has its multiplier)")
    infos = classify_params(model, base_model, probe, need_scaling=False)
    if rname not in {i.name for i in infos}:
        raise APIError(f"readout={readout!r}: {rname} is not a parameter of the model")
    if all(i.shape == i.base_shape for i in infos):  # the base width itself: muP is SP here, bit for bit
        _set_readout(module, 1.0)
        return model
    base = dict(base_model.named_parameters())
    params = dict(model.named_parameters())
    by_name = {i.name: i for i in infos}
    for info in [] if shapes_only else infos:  # on the meta device there is no init to rescale
        p = params[info.name]
        target = _mup_std(info, _std(base[info.name]), readout=info.name == rname)
        current = _std(p)
        if target is not None and current > 0 and target > 0:
            p.mul_(target / current)
    r = by_name[rname]
    _set_readout(module, r.base_shape[-1] / r.shape[-1])  # 1/m, m the readout's fan-in ratio
    return model


def _set_readout(module: nn.Module, mult: float) -> None:
    module.register_forward_hook(ReadoutMultiplier(mult))
    setattr(module, READOUT_ATTR, float(mult))


def _readouts(model: nn.Module, infos: list[ParamInfo], readout: str | None) -> dict[str, nn.Module]:
    """Modules that map width to a fixed size: a Linear whose fan-in grows and fan-out does not."""
    if readout is not None:
        return {readout: _readout_weight(model, readout)[0]}
    by_name = {i.name: i for i in infos}
    out = {}
    for name, mod in model.named_modules():
        info = by_name.get(f"{name}.weight" if name else "weight")
        if isinstance(mod, nn.Linear) and info is not None and info.inf_dims == (1,):
            out[name] = mod
    return out


def check_mup(
    model: nn.Module,
    base_model: nn.Module,
    probe: nn.Module | None = None,
    readout: str | None = None,
    tol: float = 1.25,
) -> list[str]:
    """What ``model`` lacks of muP relative to ``base_model``, as readable sentences (empty if
    nothing): a readout without its 1/m output multiplier, a readout whose init shrinks with
    width, hidden weights whose init std is not the base's x m^-1/2 (within ``tol``x). Use
    freshly initialised models; ``readout`` names the output module (found by shape if not).
    """
    try:
        infos = classify_params(model, base_model, probe)
    except APIError as exc:
        return [str(exc)]
    problems = []
    readouts = _readouts(model, infos, readout)
    by_name = {i.name: i for i in infos}
    for name, mod in readouts.items():
        info = by_name[f"{name}.weight" if name else "weight"]
        m = info.shape[-1] / info.base_shape[-1]
        have = getattr(mod, READOUT_ATTR, None)
        if have is None and m != 1:
            problems.append(
                f"readout {name!r} has no 1/m output multiplier (m = {m:g}): its logits grow with "
                f"width; call lwscale.apply_mup(model, base_model, readout={name!r})"
            )
        elif have is not None and not math.isclose(have, 1.0 / m, rel_tol=1e-6):
            problems.append(f"readout {name!r} multiplies its output by {have:g}, but muP needs 1/m = {1 / m:g}")
    if _is_meta(model, base_model):
        return problems + ["init scales not checked: a model is on the meta device"]
    base, params = dict(base_model.named_parameters()), dict(model.named_parameters())
    readout_weights = {f"{n}.weight" if n else "weight" for n in readouts}
    for info in infos:
        sb, sp = _std(base[info.name]), _std(params[info.name])
        is_readout = info.name in readout_weights
        want = _mup_std(info, sb, is_readout)
        if want is None or sb == 0 or sp == 0:
            continue
        if not (1 / tol <= sp / want <= tol):
            kind, what = (
                ("readout", "the base std (muP keeps the readout's init constant)")
                if is_readout
                else ("hidden", f"the base std {sb:.3g} x m^-1/2")
            )
            m = info.shape[-1] / info.base_shape[-1]
            problems.append(
                f"{kind} init not rescaled: {info.name} has init std {sp:.3g} at m = {m:g}, "
                f"expected {want:.3g} ({what}); call lwscale.apply_mup"
            )
    return problems
