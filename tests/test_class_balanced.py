"""Class-balanced uncertainty against a plain reference of its fill, with tied scores, classes the
model never predicts, and labels of every class count."""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from torch_al import ActivePool
from torch_al.strategies import ClassBalanced, make_strategy
from torch_al.strategies.uncertainty.uncertainty_sampling import CRITERIA


def reference_fill(probabilities: list[list[float]], uncertainty: dict[int, float], unlabeled: list[int], labels: list[int], classes: int, budget: int) -> list[int]:
    """Pick by pick: the class with the fewest labeled plus picked items that still has an
    unlabeled item predicted as it (ties to the lower class), its most uncertain such item (ties
    to the lower index)."""
    predicted = {i: max(range(classes), key=lambda c: (probabilities[i][c], -c)) for i in unlabeled}
    counts = [labels.count(c) for c in range(classes)]
    left = set(unlabeled)
    picks = []
    for _ in range(budget):
        open_classes = [c for c in range(classes) if any(predicted[i] == c for i in left)]
        chosen = min(open_classes, key=lambda c: (counts[c], c))
        item = min((i for i in left if predicted[i] == chosen), key=lambda i: (-uncertainty[i], i))
        picks.append(item)
        left.remove(item)
        counts[chosen] += 1
    return picks


@pytest.mark.parametrize("criterion", ["entropy", "margin"])
@pytest.mark.parametrize("seed", range(6))
def test_the_fill_equals_the_reference(criterion, seed):
    generator = torch.Generator().manual_seed(seed)
    classes, n = 4, 40
    logits = (torch.randn(n, classes, generator=generator, dtype=torch.float64) * 2).round()  # many tied rows
    logits[:, 3] -= 6 * (seed % 2)  # on odd seeds class 3 is almost never predicted
    labels = torch.randint(0, classes, (n,), generator=generator)
    pool = ActivePool(TensorDataset(logits, labels))
    labeled = torch.randperm(n, generator=generator)[: 3 + seed]
    pool.label(labeled, labels[labeled])
    budget = 12
    picked = ClassBalanced(criterion, progress=False).select(nn.Identity(), pool, budget)
    probabilities = logits.float().softmax(1)  # what the strategy scores through the identity model
    # The uncertainty itself is the criterion's (tested with it); the reference checks the fill.
    scores = CRITERIA[criterion](progress=False).score(probabilities).tolist()
    unlabeled = pool.unlabeled_indices.tolist()
    expected = reference_fill(probabilities.tolist(), {i: scores[i] for i in unlabeled}, unlabeled, pool.labels_of(pool.labeled_indices).tolist(), classes, budget)
    assert picked.tolist() == expected


def test_the_rarest_class_is_served_first_and_names_are_registered():
    logits = torch.tensor([[3.0, 0.0], [2.9, 0.0], [0.0, 0.1], [0.0, 2.0], [1.0, 0.9]])
    pool = ActivePool(TensorDataset(logits, torch.tensor([0, 0, 1, 1, 0])))
    pool.label([0], [0])  # class 1 has no label: it is served first
    picked = make_strategy("balanced-entropy", progress=False).select(nn.Identity(), pool, 2)
    assert picked.tolist() == [2, 4]  # class 1's most uncertain, then class 0's (1 labeled vs 1 labeled + picked: class 0 wins the tie)
    assert make_strategy("balanced-margin").criterion == "margin"
    with pytest.raises(ValueError, match="criterion must be one of"):
        ClassBalanced("variance")
    with pytest.raises(ValueError, match="scores with a model; got model=None"):
        ClassBalanced(progress=False).select(None, pool, 1)
