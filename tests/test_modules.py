"""Torch modules: output shapes (also a batch of one), matrix-form scoring, init, pretraining blend."""

from __future__ import annotations

import pytest
import torch

from ncf.errors import UsageError
from ncf.models.modules import EMBED_STD, GMF, MF, MLP, NeuMF, build_module

NU, NI = 7, 11


def _all(**kw):
    torch.manual_seed(0)
    return [MF(NU, NI, 4, **kw), GMF(NU, NI, 4, **kw), MLP(NU, NI, (8, 4), **kw), NeuMF(NU, NI, 4, (8, 4), **kw)]


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_forward_shape_including_batch_of_one(batch):
    u = torch.randint(0, NU, (batch,))
    i = torch.randint(0, NI, (batch,))
    for m in _all() + [MLP(NU, NI, (8, 4), batch_norm=True, dropout=0.5).eval()]:
        out = m(u, i)
        assert out.shape == (batch,), type(m).__name__


@pytest.mark.parametrize("biases", [False, True])
@pytest.mark.parametrize("act", ["none", "relu"])
def test_score_all_equals_pairwise(biases, act):
    users = torch.tensor([0, 3, 6])
    for m in _all(biases=biases, output_activation=act):
        with torch.no_grad():
            for p in m.parameters():  # make every part non-trivial (biases start at zero)
                p.add_(torch.randn_like(p) * 0.3)
            grid = m.score_all(users)
            pair = m(users.repeat_interleave(NI), torch.arange(NI).repeat(3)).view(3, NI)
        assert grid.shape == (3, NI)
        torch.testing.assert_close(grid, pair, rtol=1e-5, atol=1e-6)
        if act == "relu":
            assert (grid >= 0).all()


def test_mf_is_dot_product_plus_biases():
    m = MF(NU, NI, 3, biases=True)
    with torch.no_grad():
        m.user_bias.weight.fill_(0.5)
        m.item_bias.weight.fill_(-0.25)
        m.global_bias.fill_(1.0)
    u, i = torch.tensor([2]), torch.tensor([5])
    with torch.no_grad():
        expect = float(m.user_embedding.weight[2] @ m.item_embedding.weight[5]) + 0.5 - 0.25 + 1.0
        assert float(m(u, i)) == pytest.approx(expect, abs=1e-6)


def test_init_embeddings_normal_001_and_zero_biases():
    torch.manual_seed(0)
    m = NeuMF(2000, 2000, 16, (32, 16), biases=True)
    w = m.gmf_user_embedding.weight.detach().numpy()
    assert abs(w.std() - EMBED_STD) < 0.001 and abs(w.mean()) < 0.001
    assert float(m.user_bias.weight.detach().abs().sum()) == 0.0
    assert float(m.predict.bias.detach().abs().sum()) == 0.0


def test_layers_convention_and_errors():
    m = MLP(NU, NI, (64, 32, 16, 8))
    assert m.user_embedding.weight.shape == (NU, 32)  # layers[0] is the concatenated size
    assert m.predict.in_features == 8
    n = NeuMF(NU, NI, 8, (64, 32, 16, 8))
    assert n.predict.in_features == 16
    with pytest.raises(UsageError):
        MLP(NU, NI, (7, 4))
    with pytest.raises(UsageError):
        GMF(NU, NI, 4, output_activation="sigmoid")
    with pytest.raises(UsageError):
        build_module("svd", NU, NI)


def test_neumf_load_pretrained_copies_and_blends():
    torch.manual_seed(1)
    g, m = GMF(NU, NI, 4), MLP(NU, NI, (8, 4))
    n = NeuMF(NU, NI, 4, (8, 4))
    n.load_pretrained(g, m, alpha=0.3)
    assert torch.equal(n.gmf_user_embedding.weight, g.user_embedding.weight)
    assert torch.equal(n.mlp_item_embedding.weight, m.item_embedding.weight)
    assert torch.equal(n.tower[0].weight, m.tower[0].weight)
    torch.testing.assert_close(n.predict.weight[:, :4], 0.3 * g.predict.weight)
    torch.testing.assert_close(n.predict.weight[:, 4:], 0.7 * m.predict.weight)
    u, i = torch.arange(NU), torch.arange(NU) % NI
    with torch.no_grad():  # the blended prediction is the alpha-mix of the two (linear predict layers)
        torch.testing.assert_close(n(u, i), 0.3 * g(u, i) + 0.7 * m(u, i), rtol=1e-5, atol=1e-6)
    with pytest.raises(UsageError):
        n.load_pretrained(GMF(NU, NI, 5), m)


def test_embedding_sq_norm_counts_batch_rows():
    m = GMF(NU, NI, 3)
    u, i = torch.tensor([1, 1]), torch.tensor([2, 4])
    expect = 2 * m.user_embedding.weight[1].pow(2).sum() + m.item_embedding.weight[[2, 4]].pow(2).sum()
    torch.testing.assert_close(m.embedding_sq_norm(u, i), expect)


@pytest.mark.parametrize("kind,kw", [("mf", {}), ("gmf", {"biases": True}), ("mlp", {"batch_norm": True}),
                                     ("neumf", {"biases": True, "batch_norm": True, "output_activation": "relu"})])
def test_grouped_scores_equal_pairwise_with_gradients(kind, kw):
    """forward(users (B,), items (B, m)) equals forward on the repeated pairs, in train mode, gradients too."""
    torch.manual_seed(0)
    a = build_module(kind, 7, 11, **kw)
    for p in a.parameters():
        torch.nn.init.normal_(p, std=0.5)
    b = build_module(kind, 7, 11, **kw)
    b.load_state_dict(a.state_dict())
    users, items = torch.tensor([0, 3, 6, 3]), torch.randint(0, 11, (4, 5))
    grouped = a(users, items)
    flat = b(users.repeat_interleave(5), items.reshape(-1)).view(4, 5)
    assert grouped.shape == (4, 5)
    torch.testing.assert_close(grouped, flat, rtol=1e-5, atol=1e-5)
    (grouped * torch.arange(20.0).view(4, 5)).sum().backward()
    (flat * torch.arange(20.0).view(4, 5)).sum().backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-4, atol=1e-5, msg=name)
    assert a.eval()(torch.tensor([2]), torch.tensor([[4]])).shape == (1, 1)  # batch-norm needs eval for one row
