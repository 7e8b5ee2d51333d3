"""PFK and entropy on text: a tiny Hugging Face BERT classifier (built from its config, random
weights, nothing downloaded) on sentences generated here, two topics, one rare.

The model reads token ids, which have no gradient: PFK's gradient descriptors are taken at the
hooked blocks' outputs (the class token of each block, ``tokens="first"``). The model trains on a
few labeled sentences, then PFK and entropy each pick a batch; the rare topic's share of each pick
is printed.

    python examples/text_pfk.py [--pool 2000] [--budget 40]

Needs ``pip install transformers``.
"""

import argparse

import torch
import transformers
from torch.utils.data import TensorDataset

from torch_al import ActivePool
from torch_al.strategies import PFK, Entropy

TOPICS = (
    "the market price rose as traders sold shares bonds and funds after the bank report".split(),
    "the team scored late as fans cheered the keeper saved a penalty in the final match".split(),
)
SHARED = "a an and it was on of to with this that very".split()
LENGTH = 12


def vocabulary() -> dict[str, int]:
    words = sorted({word for topic in TOPICS for word in topic} | set(SHARED))
    return {"[CLS]": 0, **{word: index + 1 for index, word in enumerate(words)}}


def sentences(count: int, rare_share: float, generator: torch.Generator) -> tuple[list[str], torch.Tensor]:
    """Sentences of LENGTH words drawn from a topic's words and the shared ones; topic 1 is rare."""
    topics = (torch.rand(count, generator=generator) < rare_share).long()
    texts = []
    for topic in topics.tolist():
        words = TOPICS[topic] + SHARED
        texts.append(" ".join(words[int(i)] for i in torch.randint(len(words), (LENGTH,), generator=generator)))
    return texts, topics


def encode(texts: list[str], vocabulary: dict[str, int]) -> torch.Tensor:
    """Token ids, [CLS] first (whitespace words: the tokenizer of this example)."""
    return torch.tensor([[0, *(vocabulary[word] for word in text.split())] for text in texts])


def tiny_bert(vocabulary_size: int) -> transformers.BertForSequenceClassification:
    config = transformers.BertConfig(
        vocab_size=vocabulary_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        num_labels=2, max_position_embeddings=LENGTH + 1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    return transformers.BertForSequenceClassification(config)


def train(model: torch.nn.Module, ids: torch.Tensor, labels: torch.Tensor, steps: int = 60) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
    model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=2000)
    parser.add_argument("--budget", type=int, default=40)
    options = parser.parse_args()

    generator = torch.Generator().manual_seed(0)
    words = vocabulary()
    pool_texts, pool_topics = sentences(options.pool, 0.05, generator)
    validation_texts, validation_topics = sentences(200, 0.5, generator)  # balanced, as PFK's validation set should be
    pool = ActivePool(TensorDataset(encode(pool_texts, words), pool_topics))
    first = torch.arange(20)
    pool.label(first, pool_topics[first])

    torch.manual_seed(0)
    model = tiny_bert(len(words))
    train(model, pool.dataset.tensors[0][first], pool_topics[first])
    layers = ["bert.encoder.layer.0", "bert.encoder.layer.1"]
    strategies = {"pfk": PFK(validation=(encode(validation_texts, words), validation_topics), layers=layers, tokens="first", progress=False), "entropy": Entropy(progress=False)}
    print(f"pool: {options.pool} sentences, {int(pool_topics.sum())} of the rare topic ({pool_topics.float().mean():.1%})")
    for name, strategy in strategies.items():
        picked = strategy.select(model, pool, options.budget)
        print(f"{name:8s} picked {picked.numel()}: {int(pool_topics[picked].sum())} of the rare topic; e.g. {pool_texts[int(picked[0])]!r}")


if __name__ == "__main__":
    main()
