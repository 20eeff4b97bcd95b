"""Torch modules of the NCF family (He et al. 2017) and matrix factorisation. They only compute scores.

Every module maps int64 tensors `users`, `items` of shape (B,) to scores of shape (B,), also for B = 1;
items of shape (B, m) give (B, m) scores (`score_groups`: user b against each of its m items, the user-side
work done once per row), so that DistributedDataParallel, which wraps only forward, sees grouped losses.
Initialisation: embeddings normal(0, 0.01) as in the paper; hidden linear layers Kaiming-uniform (ReLU),
prediction layers Xavier-uniform; all linear biases zero. Optional per-user/per-item bias terms (zero
init) are added before the output activation ("none" = linear/logits, "relu" = the seed Keras model).
"""

from __future__ import annotations

import torch
from torch import nn

from ncf.errors import UsageError

EMBED_STD = 0.01
ACTIVATIONS = ("none", "relu")

# Paper presets (He et al. 2017, section 4): predictive factors 8.
PAPER_GMF = {"factors": 8}
PAPER_MLP = {"layers": (64, 32, 16, 8)}
PAPER_NEUMF = {"factors": 8, "layers": (64, 32, 16, 8)}


def _embedding(n: int, dim: int) -> nn.Embedding:
    emb = nn.Embedding(n, dim)
    nn.init.normal_(emb.weight, std=EMBED_STD)
    return emb


def _zero_embedding(n: int) -> nn.Embedding:
    emb = nn.Embedding(n, 1)
    nn.init.zeros_(emb.weight)
    return emb


def _predict_layer(n_in: int) -> nn.Linear:
    lin = nn.Linear(n_in, 1)
    nn.init.xavier_uniform_(lin.weight)
    nn.init.zeros_(lin.bias)
    return lin


class ScoreModule(nn.Module):
    """Shared parts: optional user/item biases and the output activation."""

    def __init__(self, n_users: int, n_items: int, biases: bool, output_activation: str) -> None:
        super().__init__()
        if output_activation not in ACTIVATIONS:
            raise UsageError(f"output_activation '{output_activation}' is not known", f"use one of: {', '.join(ACTIVATIONS)}")
        self.n_users = n_users
        self.n_items = n_items
        self.output_activation = output_activation
        self.user_bias = _zero_embedding(n_users) if biases else None
        self.item_bias = _zero_embedding(n_items) if biases else None

    def _finish(self, raw: torch.Tensor, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """raw scores of users (B,) x items, (B,) or (B, m) like items, + biases, then the output activation."""
        if self.user_bias is not None:
            user = self.user_bias(users).view(-1, *([1] * (raw.dim() - 1)))  # (B,) or (B, 1)
            raw = raw + user + self.item_bias(items).view(raw.shape)
        return torch.relu(raw) if self.output_activation == "relu" else raw

    def _finish_all(self, raw: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """raw (B, n_items) + biases, then the output activation."""
        if self.user_bias is not None:
            raw = raw + self.user_bias(users) + self.item_bias.weight.view(1, -1)
        return torch.relu(raw) if self.output_activation == "relu" else raw

    def embedding_sq_norm(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Sum of squared embedding (and bias) rows used by this batch, for L2 on the batch."""
        total = users.new_zeros((), dtype=torch.float32)
        for name, mod in self.named_children():
            if isinstance(mod, nn.Embedding):
                idx = users if "user" in name else items
                total = total + mod(idx).pow(2).sum()
        return total

    def score_groups(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of items (B, m) for users (B,): row b scores user b against each of its m items, (B, m).
        Equal to forward on the repeated pairs (train or eval mode); subclasses share the user-side work."""
        b, m = items.shape
        return self(users.repeat_interleave(m), items.reshape(-1)).view(b, m)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of every item for each user: (len(users), n_items). Pairwise fallback."""
        n = self.n_items
        uu = users.repeat_interleave(n)
        ii = torch.arange(n, device=users.device).repeat(len(users))
        return self(uu, ii).view(len(users), n)


class MF(ScoreModule):
    """Matrix factorisation: dot(p_u, q_i) + b_u + b_i + global bias."""

    def __init__(self, n_users: int, n_items: int, factors: int = 32, biases: bool = True,
                 output_activation: str = "none") -> None:
        super().__init__(n_users, n_items, biases, output_activation)
        self.user_embedding = _embedding(n_users, factors)
        self.item_embedding = _embedding(n_items, factors)
        self.global_bias = nn.Parameter(torch.zeros(1))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if items.dim() == 2:
            return self.score_groups(users, items)
        raw = (self.user_embedding(users) * self.item_embedding(items)).sum(dim=1) + self.global_bias
        return self._finish(raw, users, items)

    def score_groups(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        raw = (self.user_embedding(users)[:, None, :] * self.item_embedding(items)).sum(dim=2) + self.global_bias
        return self._finish(raw, users, items)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        raw = self.user_embedding(users) @ self.item_embedding.weight.T + self.global_bias
        return self._finish_all(raw, users)


class GMF(ScoreModule):
    """Generalised matrix factorisation: h^T (p_u * q_i) + b."""

    def __init__(self, n_users: int, n_items: int, factors: int = 8, biases: bool = False,
                 output_activation: str = "none") -> None:
        super().__init__(n_users, n_items, biases, output_activation)
        self.user_embedding = _embedding(n_users, factors)
        self.item_embedding = _embedding(n_items, factors)
        self.predict = _predict_layer(factors)

    def features(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The last hidden vector p_u * q_i, (B, factors)."""
        return self.user_embedding(users) * self.item_embedding(items)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if items.dim() == 2:
            return self.score_groups(users, items)
        return self._finish(self.predict(self.features(users, items)).view(-1), users, items)

    def score_groups(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        h = self.user_embedding(users)[:, None, :] * self.item_embedding(items)
        return self._finish(self.predict(h).squeeze(-1), users, items)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        weighted = self.user_embedding(users) * self.predict.weight  # (B, f) * (1, f)
        raw = weighted @ self.item_embedding.weight.T + self.predict.bias
        return self._finish_all(raw, users)


def _tower(layers: tuple[int, ...], dropout: float, batch_norm: bool) -> nn.Sequential:
    """Hidden layers layers[0] -> layers[1] -> ... with ReLU (+ batch-norm, dropout)."""
    mods: list[nn.Module] = []
    for n_in, n_out in zip(layers[:-1], layers[1:]):
        lin = nn.Linear(n_in, n_out)
        nn.init.kaiming_uniform_(lin.weight, nonlinearity="relu")
        nn.init.zeros_(lin.bias)
        mods.append(lin)
        if batch_norm:
            mods.append(nn.BatchNorm1d(n_out))
        mods.append(nn.ReLU())
        if dropout > 0:
            mods.append(nn.Dropout(dropout))
    return nn.Sequential(*mods)


PAIRS_PER_CHUNK = 1 << 18  # (user, item) pairs per pass of the tower in factorised full ranking


def _tower_all(tower: nn.Sequential, user_emb: torch.Tensor, item_table: torch.Tensor, w_out: torch.Tensor) -> torch.Tensor | None:
    """w_out . tower([u; i]) for every user x item pair, (B, n_items), or None when the tower has no first Linear.

    The first layer is split, W [u; i] + b = (W_u u + b) + W_i i: its user part is computed once per user,
    its item part once per item table; only the remaining layers run per pair, in chunks of items."""
    if len(tower) == 0 or not isinstance(tower[0], nn.Linear):
        return None
    first, rest = tower[0], tower[1:]
    d = user_emb.shape[1]
    u1 = torch.addmm(first.bias, user_emb, first.weight[:, :d].T)  # (B, h1)
    i1 = item_table @ first.weight[:, d:].T  # (n_items, h1)
    b, n = len(u1), len(i1)
    out = u1.new_empty((b, n))
    step = max(1, PAIRS_PER_CHUNK // max(b, 1))
    for s in range(0, n, step):
        h = (u1[:, None, :] + i1[None, s:s + step, :]).reshape(-1, u1.shape[1])
        for mod in rest:  # eval mode: ReLU in place, dropout is the identity
            if isinstance(mod, nn.ReLU):
                h = h.relu_()
            elif not isinstance(mod, nn.Dropout):
                h = mod(h)
        out[:, s:s + step] = (h @ w_out.T).view(b, -1)
    return out


def _tower_groups(tower: nn.Sequential, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
    """tower([u_b; i_bj]) for users (B, d) and their items (B, m, d): (B, m, out). The first Linear is split
    (W_u u + b computed once per user); the other layers run on the (B * m) pairs, so dropout and
    batch-norm behave as in forward."""
    b, m, d = item_emb.shape
    if len(tower) == 0 or not isinstance(tower[0], nn.Linear):
        h = torch.cat([user_emb[:, None, :].expand(b, m, d), item_emb], dim=2).reshape(b * m, 2 * d)
        return tower(h).view(b, m, -1)
    first = tower[0]
    h = torch.addmm(first.bias, user_emb, first.weight[:, :d].T)[:, None, :] + item_emb @ first.weight[:, d:].T
    h = h.reshape(b * m, -1)
    for mod in tower[1:]:
        h = mod(h)
    return h.view(b, m, -1)


def _check_layers(layers) -> tuple[int, ...]:
    layers = tuple(int(x) for x in layers)
    if len(layers) < 1 or layers[0] < 2 or layers[0] % 2 or min(layers) < 1:
        raise UsageError(f"bad MLP layers {list(layers)}",
                         "pass sizes like [64, 32, 16, 8]: the first is the concatenated embedding size (even)")
    return layers


class MLP(ScoreModule):
    """MLP over concat(p_u, q_i); `layers[0]` is the concatenated embedding size (paper convention),
    so each embedding has layers[0] // 2 dimensions, and layers[1:] are the hidden ReLU layers."""

    def __init__(self, n_users: int, n_items: int, layers=(64, 32, 16, 8), dropout: float = 0.0,
                 batch_norm: bool = False, biases: bool = False, output_activation: str = "none") -> None:
        super().__init__(n_users, n_items, biases, output_activation)
        layers = _check_layers(layers)
        self.user_embedding = _embedding(n_users, layers[0] // 2)
        self.item_embedding = _embedding(n_items, layers[0] // 2)
        self.tower = _tower(layers, dropout, batch_norm)
        self.predict = _predict_layer(layers[-1])

    def features(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The last hidden vector, (B, layers[-1])."""
        return self.tower(torch.cat([self.user_embedding(users), self.item_embedding(items)], dim=1))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if items.dim() == 2:
            return self.score_groups(users, items)
        return self._finish(self.predict(self.features(users, items)).view(-1), users, items)

    def score_groups(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        h = _tower_groups(self.tower, self.user_embedding(users), self.item_embedding(items))
        return self._finish(self.predict(h).squeeze(-1), users, items)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Factorised first layer (see _tower_all) in eval mode; the pairwise fallback in train mode."""
        raw = None if self.training else _tower_all(self.tower, self.user_embedding(users), self.item_embedding.weight,
                                                    self.predict.weight)
        if raw is None:
            return super().score_all(users)
        return self._finish_all(raw + self.predict.bias, users)


class NeuMF(ScoreModule):
    """NeuMF: GMF and MLP with separate embeddings; the predict layer reads concat(GMF vector, MLP vector)."""

    def __init__(self, n_users: int, n_items: int, factors: int = 8, layers=(64, 32, 16, 8), dropout: float = 0.0,
                 batch_norm: bool = False, biases: bool = False, output_activation: str = "none") -> None:
        super().__init__(n_users, n_items, biases, output_activation)
        layers = _check_layers(layers)
        self.factors = factors
        self.gmf_user_embedding = _embedding(n_users, factors)
        self.gmf_item_embedding = _embedding(n_items, factors)
        self.mlp_user_embedding = _embedding(n_users, layers[0] // 2)
        self.mlp_item_embedding = _embedding(n_items, layers[0] // 2)
        self.tower = _tower(layers, dropout, batch_norm)
        self.predict = _predict_layer(factors + layers[-1])

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if items.dim() == 2:
            return self.score_groups(users, items)
        g = self.gmf_user_embedding(users) * self.gmf_item_embedding(items)
        m = self.tower(torch.cat([self.mlp_user_embedding(users), self.mlp_item_embedding(items)], dim=1))
        return self._finish(self.predict(torch.cat([g, m], dim=1)).view(-1), users, items)

    def score_groups(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        g = self.gmf_user_embedding(users)[:, None, :] * self.gmf_item_embedding(items)
        m = _tower_groups(self.tower, self.mlp_user_embedding(users), self.mlp_item_embedding(items))
        return self._finish(self.predict(torch.cat([g, m], dim=2)).squeeze(-1), users, items)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """GMF part as a matrix product, MLP part with a factorised first layer (eval mode; pairwise in train)."""
        f = self.factors
        mlp = None if self.training else _tower_all(self.tower, self.mlp_user_embedding(users),
                                                    self.mlp_item_embedding.weight, self.predict.weight[:, f:])
        if mlp is None:
            return super().score_all(users)
        gmf = (self.gmf_user_embedding(users) * self.predict.weight[:, :f]) @ self.gmf_item_embedding.weight.T
        return self._finish_all(gmf + mlp + self.predict.bias, users)

    @torch.no_grad()
    def load_pretrained(self, gmf: GMF, mlp: MLP, alpha: float = 0.5) -> None:
        """Initialise from trained GMF and MLP (paper, section 3.4.1): copy embeddings and tower; the predict
        layer is concat(alpha * h_gmf, (1 - alpha) * h_mlp), its bias (and user/item biases) blended alike."""
        if not 0.0 <= alpha <= 1.0:
            raise UsageError(f"alpha must be in [0, 1], got {alpha}", "pass e.g. alpha=0.5")
        pairs = [(self.gmf_user_embedding, gmf.user_embedding), (self.gmf_item_embedding, gmf.item_embedding),
                 (self.mlp_user_embedding, mlp.user_embedding), (self.mlp_item_embedding, mlp.item_embedding)]
        for dst, src in pairs:
            if dst.weight.shape != src.weight.shape:
                raise UsageError(f"pretrained embedding shape {tuple(src.weight.shape)} does not match "
                                 f"{tuple(dst.weight.shape)}", "use the same factors/layers and data for GMF, MLP and NeuMF")
            dst.weight.copy_(src.weight)
        try:
            self.tower.load_state_dict(mlp.tower.state_dict())
        except RuntimeError:
            raise UsageError("pretrained MLP tower does not match NeuMF's", "use the same layers, batch_norm and "
                             "dropout for MLP and NeuMF") from None
        self.predict.weight.copy_(torch.cat([alpha * gmf.predict.weight, (1 - alpha) * mlp.predict.weight], dim=1))
        self.predict.bias.copy_(alpha * gmf.predict.bias + (1 - alpha) * mlp.predict.bias)
        if self.user_bias is not None:
            for name in ("user_bias", "item_bias"):
                parts = [getattr(m, name) for m in (gmf, mlp)]
                w = torch.zeros_like(getattr(self, name).weight)
                if parts[0] is not None:
                    w += alpha * parts[0].weight
                if parts[1] is not None:
                    w += (1 - alpha) * parts[1].weight
                getattr(self, name).weight.copy_(w)


def build_module(kind: str, n_users: int, n_items: int, **kw) -> ScoreModule:
    """A module by name: 'mf', 'gmf', 'mlp' or 'neumf'."""
    classes = {"mf": MF, "gmf": GMF, "mlp": MLP, "neumf": NeuMF}
    if kind not in classes:
        raise UsageError(f"unknown module '{kind}'", f"use one of: {', '.join(classes)}")
    return classes[kind](n_users, n_items, **kw)
