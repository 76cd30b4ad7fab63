"""
Token sequences: which tokens decide "7 before 3"
=================================================

A synthetic text task, generated here: sequences of 8 tokens from a vocabulary of 10
(0 is the padding id, never used inside a sequence); the label says whether the sequence
contains token 7 *before* token 3. An embedding + LSTM classifier learns it in a few
seconds.

The converter unrolls the LSTM into the layer graph, so DeepLift (against the all-padding
sequence, an explicit token baseline) and LRP (LRP-LSTM, Arras et al., 2017) explain it.
Attributions to integer ids are the embedding's contribution, summed over the embedding
dimension: one number per token. On sequences labelled positive, the 7 and the 3 that
make the rule true should stand out, which we count.

Run from the repository root::

    python examples/text_sequence.py
"""

# %%
# Data and model
# --------------

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import sknn_explain as skx

LENGTH, VOCAB, FIRST, SECOND = 8, 10, 7, 3


def make_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random sequences (ids 1..9), half of them with a FIRST placed before a SECOND."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (n, LENGTH), generator=g)
    ids[ids == FIRST] = 1  # place the two key tokens explicitly
    ids[ids == SECOND] = 2
    for row in ids:
        i, j = torch.randperm(LENGTH, generator=g)[:2].tolist()
        kind = int(torch.randint(0, 4, (1,), generator=g))
        if kind == 0:    # both, 7 first: positive
            row[min(i, j)], row[max(i, j)] = FIRST, SECOND
        elif kind == 1:  # both, 3 first: negative
            row[min(i, j)], row[max(i, j)] = SECOND, FIRST
        elif kind == 2:  # only one of them: negative
            row[i] = FIRST if torch.rand(1, generator=g) < 0.5 else SECOND
    first = torch.where(ids == FIRST, torch.arange(LENGTH), LENGTH).min(1).values
    second = torch.where(ids == SECOND, torch.arange(LENGTH), -1).max(1).values
    return ids, (first < second).long()


class SequenceClassifier(nn.Module):
    """Embedding -> LSTM -> linear read-out of the last hidden state."""

    def __init__(self, dim: int = 16, hidden: int = 32) -> None:
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, dim, padding_idx=0)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embedding(ids))
        return self.head(out[:, -1])


def train(seed: int = 0, epochs: int = 5) -> tuple[SequenceClassifier, torch.Tensor,
                                                    torch.Tensor]:
    """The trained classifier and the test sequences and labels."""
    X_train, y_train = make_data(2000, seed)
    X_test, y_test = make_data(500, seed + 1)
    torch.manual_seed(seed)
    model = SequenceClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(epochs):
        for idx in torch.randperm(len(X_train)).split(100):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(X_train[idx]), y_train[idx]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(X_test).argmax(1) == y_test).float().mean().item()
    print(f"test accuracy {accuracy:.3f}")
    return model, X_test, y_test


# %%
# Explain the "positive" score
# ----------------------------
# For each method: the attributions of a few positive sequences, token by token, and how
# often the two largest attributions fall on the deciding 7 and 3.


def main(n_rows: int = 60) -> dict[str, float]:
    """Train, explain positive test sequences with DeepLift and LRP, print token
    attributions; returns, per method, the fraction of rows whose top-2 tokens are the
    deciding FIRST and SECOND."""
    model, X_test, y_test = train()
    ids = X_test[y_test == 1][:n_rows]
    padding = torch.zeros(1, LENGTH, dtype=torch.long)  # explicit token baseline
    explainers = {
        "DeepLift": skx.DeepLift(dtype="double").fit(model, padding),
        "LRP (epsilon)": skx.LRP(rule_name="epsilon", dtype="double").fit(model),
    }
    hits = {}
    for name, explainer in explainers.items():
        result = explainer.explain(ids, output_idx=[1])
        values = result.values[..., 0]                                   # (rows, tokens)
        top2 = np.argsort(-values, axis=1)[:, :2]
        key = np.stack([(ids == FIRST).numpy(), (ids == SECOND).numpy()]).any(0)
        hits[name] = float(np.mean([key[r, top2[r]].all() for r in range(len(ids))]))
        print(f"\n{name}: top-2 tokens are the deciding {FIRST} and {SECOND} in "
              f"{hits[name]:.0%} of {len(ids)} positive sequences")
        if name == "DeepLift":
            gap = float(np.max(np.abs(values.sum(1) - result.decomp_goal[:, 0])))
            print(f"  max |sum of attributions - (f(x) - f(padding))| = {gap:.2g}")
        for r in range(3):
            cells = "  ".join(f"{int(t)}:{v:+.2f}" for t, v in zip(ids[r], values[r]))
            print(f"  {cells}")
    return hits


# %%
# Run
# ---

if __name__ == "__main__":
    main()
