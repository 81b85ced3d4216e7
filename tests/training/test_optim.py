"""The stacked AdamW against torch.optim.AdamW, stacked vs separate runs, and freezing."""

import pytest
import torch
from conftest import tiny_cfg

from lwscale.model.params import classify_model, stack_groups
from lwscale.model.transformer import build
from lwscale.training.optim import StackedAdamW

CELLS = [("sqrt-wd", 2e-2, 0.3), ("const-wd", 5e-3, 0.05), ("linear-wd", 1e-2, 1.0), ("sp", 3e-2, 0.1)]


def make(width, cells, seeds=None, clip=1.0):
    model = build(tiny_cfg(width, n_stack=len(cells)), seeds=seeds or [0] * len(cells))
    opt = StackedAdamW(stack_groups(model, classify_model(model), cells), len(cells), max_grad_norm=clip)
    return model, opt


def test_matches_torch_adamw_step_for_step():
    """Same gradients in, same weights out: our per-cell groups and clipping against
    torch.nn.utils.clip_grad_norm_ + torch.optim.AdamW run on each cell alone."""
    cells = CELLS[:3]
    model, opt = make(64, cells, clip=0.05)  # a small clip so that clipping is active
    refs = []
    for k, (_rule, _eta, _lam) in enumerate(cells):
        ps = {n: p[k].detach().clone().requires_grad_(True) for n, p in model.named_parameters()}
        groups = []
        for g in opt.groups:
            names = [n for n, p in model.named_parameters() if any(p is q for q in g.params)]
            groups.append({"params": [ps[n] for n in names], "lr": g.lr[k].item(), "weight_decay": g.wd[k].item()})
        assert len(groups) == 2 and {len(g["params"]) for g in groups} == {7, 14}
        refs.append((ps, torch.optim.AdamW(groups, betas=(0.9, 0.95), eps=1e-8, foreach=False)))
    g = torch.Generator().manual_seed(0)
    clipped = 0
    for step in range(10):
        idx = torch.randint(0, 256, (len(cells), 4, 33), generator=g)
        model(idx[..., :-1], idx[..., 1:]).sum().backward()
        norms = opt.grad_norms()
        clipped += int((norms > 0.05).sum())
        for k, (ps, ref) in enumerate(refs):
            for n, p in model.named_parameters():
                ps[n].grad = p.grad[k].clone()
            torch.nn.utils.clip_grad_norm_(list(ps.values()), 0.05)
            ref.step()
        opt.step()
        opt.zero_grad()
        for k, (ps, _) in enumerate(refs):
            for n, p in model.named_parameters():
                torch.testing.assert_close(p[k], ps[n], rtol=1e-5, atol=1e-7, msg=f"step {step} cell {k} {n}")
    assert clipped > 0


def run(model, opt, batches):
    losses = []
    for idx in batches:
        loss = model(idx[..., :-1], idx[..., 1:])
        loss.sum().backward()
        opt.step(healthy=torch.isfinite(loss))
        opt.zero_grad()
        losses.append(loss.detach())
    return torch.stack(losses)  # [steps, K]


def test_stacked_equals_separate(rand_tokens):
    """K = 4 cells with different (eta, lambda, rule) trained for 10 steps stacked give the
    same losses and weights as 4 separate K = 1 runs (fp32, CPU)."""
    batches = rand_tokens(len(CELLS))
    model, opt = make(64, CELLS)
    stacked = run(model, opt, batches)
    for k, cell in enumerate(CELLS):
        m1, o1 = make(64, [cell])
        single = run(m1, o1, batches[:, k : k + 1])
        torch.testing.assert_close(stacked[:, k : k + 1], single, rtol=1e-5, atol=1e-6)
        for (n, p), (_, p1) in zip(model.named_parameters(), m1.named_parameters()):
            torch.testing.assert_close(p[k : k + 1], p1, rtol=1e-5, atol=1e-6, msg=n)
    assert stacked[-1].lt(stacked[0]).all()  # every cell learned something


def test_nan_freezes_only_that_cell(rand_tokens):
    batches = rand_tokens(3)
    cells = CELLS[:3]
    model, opt = make(64, cells)
    losses = []
    for step, idx in enumerate(batches):
        loss = model(idx[..., :-1], idx[..., 1:])
        if step == 4:  # inject: cell 1's loss goes NaN, which poisons its gradients
            loss = loss * torch.tensor([1.0, float("nan"), 1.0])
        loss.sum().backward()
        opt.step(healthy=torch.isfinite(loss))
        opt.zero_grad()
        losses.append(loss.detach())
        if step == 4:
            frozen = {n: p[1].clone() for n, p in model.named_parameters()}
    assert opt.alive.tolist() == [True, False, True]
    assert opt.died_at.tolist() == [-1, 5, -1]
    for n, p in model.named_parameters():
        assert torch.equal(p[1], frozen[n]), n  # the frozen cell no longer moves
        assert torch.isfinite(p).all(), n
    for k in (0, 2):  # the others match their separate runs
        m1, o1 = make(64, [cells[k]])
        single = run(m1, o1, batches[:, k : k + 1])
        torch.testing.assert_close(torch.stack(losses)[:, k : k + 1], single, rtol=1e-5, atol=1e-6)


def test_double_membership_is_refused():
    model = build(tiny_cfg(32))
    from lwscale.training.optim import Group

    p = next(model.parameters())
    with pytest.raises(ValueError, match="twice"):
        StackedAdamW(
            [Group("a", [p], torch.ones(1), torch.zeros(1)), Group("b", [p], torch.ones(1), torch.zeros(1))], 1
        )


def test_compiled_update_equals_eager(rand_tokens):
    """The GPU fast path compiles the optimizer update; it must compute the same step."""
    batches = rand_tokens(2, steps=4)
    eager_m, eager_o = make(32, CELLS[:2])
    comp_m, comp_o = make(32, CELLS[:2])
    comp_o.compile()
    a, b = run(eager_m, eager_o, batches), run(comp_m, comp_o, batches)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for (n, p), (_, q) in zip(eager_m.named_parameters(), comp_m.named_parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=n)
