"""The stacked LLaMA-style model and its muP parametrization."""

import math

import pytest
import torch
from conftest import tiny_cfg

from lwscale.model.config import flops_per_token, parametrization
from lwscale.model.transformer import Transformer, build


@pytest.mark.parametrize("unembed_class", ["vector", "matrix"])
def test_mup_equals_sp_bit_for_bit_at_base_width(unembed_class):
    base = tiny_cfg(32, unembed_class=unembed_class)
    mup = build(parametrization(base, mup=True), seeds=[7])
    sp = build(parametrization(base, mup=False), seeds=[7])
    for (n1, p1), (n2, p2) in zip(mup.named_parameters(), sp.named_parameters()):
        assert n1 == n2 and torch.equal(p1, p2), n1
    idx = torch.randint(0, 256, (1, 2, 32))
    assert torch.equal(mup(idx), sp(idx))


def test_mup_and_sp_differ_when_wider():
    wide = tiny_cfg(128)
    mup, sp = Transformer(parametrization(wide, True)), Transformer(parametrization(wide, False))
    assert mup.readout_mult == pytest.approx(0.25) and sp.readout_mult == 1.0
    assert mup.init_std("blocks.0.attn.q.weight") == pytest.approx(0.02 / 2)
    assert sp.init_std("blocks.0.attn.q.weight") == pytest.approx(0.02)
    assert mup.init_std("blocks.1.mlp.down.weight") == pytest.approx(0.02 / 2 / math.sqrt(4))
    assert mup.init_std("embed") == mup.init_std("unembed") == 0.02
    # a matrix-like unembedding: hidden-matrix init, no multiplier (its lr eta/m scales it)
    mat = Transformer(parametrization(tiny_cfg(128, unembed_class="matrix"), True))
    assert mat.readout_mult == 1.0 and mat.init_std("unembed") == pytest.approx(0.02 / 2)
    assert mat.init_std("embed") == 0.02
    assert Transformer(tiny_cfg(128, unembed_class="matrix", readout_zero_init=True)).init_std("unembed") == 0.0


def readout_logit_update(width: int, unembed_class: str, eta: float = 2**-6) -> float:
    """Mean |change of the logits| after one AdamW step that moves only the unembedding (sqrt-wd
    lr and wd for its class, no clipping), on one fixed 8-token sequence. With fewer tokens than
    the width, the update's coherent part (~ lr * d * readout_mult) dominates its random part."""
    from lwscale.model.params import classify_model, stack_groups
    from lwscale.training.optim import StackedAdamW

    m = build(tiny_cfg(width, unembed_class=unembed_class), seeds=[0])
    x = torch.randint(0, 256, (1, 1, 9), generator=torch.Generator().manual_seed(0))
    groups = [
        g for g in stack_groups(m, classify_model(m), [("sqrt-wd", eta, 0.1)]) if any(p is m.unembed for p in g.params)
    ]
    assert len(groups) == 1
    groups[0].params = [m.unembed]
    opt = StackedAdamW(groups, 1, max_grad_norm=None)
    with torch.no_grad():
        before = m(x[..., :-1])
    m(x[..., :-1], x[..., 1:]).sum().backward()
    opt.step()
    with torch.no_grad():
        return (m(x[..., :-1]) - before).abs().mean().item()


@pytest.mark.parametrize("unembed_class", ["vector", "matrix"])
def test_readout_logit_update_is_flat_in_width(unembed_class):
    """muP's readout condition: one Adam step on the unembedding moves the logits by the same
    amount at every width. A matrix-like unembedding that kept the 1/m multiplier on top of its
    lr eta/m fell as 1/m (0.17 -> 0.02 from width 32 to 256)."""
    upd = {w: readout_logit_update(w, unembed_class) for w in (32, 64, 128, 256)}
    assert max(upd.values()) / min(upd.values()) < 1.3, upd


def test_init_stds_measured():
    m = build(tiny_cfg(128), seeds=[0])
    p = dict(m.named_parameters())
    assert p["blocks.0.mlp.up.weight"].std().item() == pytest.approx(0.01, rel=0.05)
    assert p["embed"].std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.all(p["norm.weight"] == 1)
    z = build(tiny_cfg(64, readout_zero_init=True), seeds=[0])
    assert torch.all(z.unembed == 0)


def test_stacked_init_matches_single():
    stacked = build(tiny_cfg(64, n_stack=3), seeds=[5, 6, 5])
    for k, seed in enumerate([5, 6, 5]):
        single = build(tiny_cfg(64), seeds=[seed])
        for (n, ps), (_, p1) in zip(stacked.named_parameters(), single.named_parameters()):
            assert torch.equal(ps[k], p1[0]), (k, n)


def test_stacked_forward_matches_single():
    stacked = build(tiny_cfg(64, n_stack=2), seeds=[1, 2])
    idx = torch.randint(0, 256, (2, 3, 32))
    tgt = torch.randint(0, 256, (2, 3, 32))
    loss = stacked(idx, tgt)
    for k, seed in enumerate([1, 2]):
        single = build(tiny_cfg(64), seeds=[seed])
        assert torch.allclose(single(idx[k : k + 1], tgt[k : k + 1]), loss[k : k + 1], rtol=1e-6, atol=1e-6)
    assert stacked(idx).shape == (2, 3, 32, 256)


def test_tied_embeddings():
    m = build(tiny_cfg(64, tie_embeddings=True), seeds=[0])
    assert m.unembed is None
    assert m(torch.zeros(1, 1, 4, dtype=torch.long)).shape == (1, 1, 4, 256)


def test_config_validation():
    with pytest.raises(ValueError, match="divisible"):
        tiny_cfg(40)
    with pytest.raises(ValueError, match="whole number"):
        tiny_cfg(32, ffn_mult=2.7)
    with pytest.raises(ValueError, match="positive"):
        tiny_cfg(0)
    with pytest.raises(ValueError, match="unembed_class"):
        tiny_cfg(32, unembed_class="tensor")
    with pytest.raises(ValueError, match="untied"):
        tiny_cfg(32, unembed_class="matrix", tie_embeddings=True)


def test_unembed_class_in_spec_and_cell_ids():
    """The spec's class reaches the model; ids of vector cells (the default) are those from
    before the field existed, and matrix cells get new ones (their model changed)."""
    from pydantic import ValidationError

    from lwscale.sweep.spec import ModelSpec

    assert "unembed_class" not in tiny_cfg(64).to_dict()
    assert tiny_cfg(64, unembed_class="matrix").to_dict()["unembed_class"] == "matrix"
    with pytest.raises(ValidationError, match="tie_embeddings"):
        ModelSpec(widths=[64], unembed_class="matrix", tie_embeddings=True)


def test_flops_per_token():
    cfg = tiny_cfg(64)
    n_matrix = 2 * (4 * 64 * 64 + 3 * 64 * 176)
    assert flops_per_token(cfg) == 6 * (n_matrix + 256 * 64) + 12 * 2 * 64 * 32


def markov_data(steps: int, batch: int, T: int, seed: int = 123):
    """Sequences from a random Markov chain over 256 tokens: its full-rank transition table
    rewards width (a width-d model's logits have rank <= d), and it is learned quickly."""
    g = torch.Generator().manual_seed(seed)
    P = torch.softmax(torch.randn(256, 256, generator=g) * 2.0, -1)
    x = torch.empty(steps * batch + 256, T + 1, dtype=torch.long)
    x[:, 0] = torch.randint(0, 256, (len(x),), generator=g)
    for t in range(1, T + 1):
        x[:, t] = torch.multinomial(P[x[:, t - 1]], 1, generator=g).squeeze(1)
    return x[:-256].view(steps, 1, batch, T + 1), x[-256:].unsqueeze(0)


def test_wider_is_better():
    """microsoft/mup's test: at one fixed good (eta, lambda) under muP + sqrt-wd, a short
    training orders the loss by width."""
    from lwscale.model.params import classify_model, stack_groups
    from lwscale.science.schedule import lr_factor
    from lwscale.training.optim import StackedAdamW

    steps = 150
    data, val = markov_data(steps, 32, 32)
    losses = {}
    for width in (32, 64, 128):
        m = build(tiny_cfg(width, depth=1), seeds=[0])
        opt = StackedAdamW(stack_groups(m, classify_model(m), [("sqrt-wd", 2**-6, 0.1)]), 1)
        for s in range(steps):
            x = data[s]
            m(x[..., :-1], x[..., 1:]).sum().backward()
            opt.step(lr_factor(s, steps, 10, "cosine"))
            opt.zero_grad()
        with torch.no_grad():
            losses[width] = m(val[..., :-1], val[..., 1:]).item()
    assert losses[32] > losses[64] + 0.03 > losses[128] + 0.06, losses
