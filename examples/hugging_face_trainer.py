"""Active learning inside a Hugging Face ``Trainer``: a small ViT (built from its config, random
weights, nothing downloaded) learns Fashion-MNIST from a ``datasets.Dataset`` pool; each
``trainer.train()`` ends with a PFK round on the ViT's class tokens, answered here by the
dataset's own labels (a simulated annotator), and the next round trains on the new labels.

    python examples/hugging_face_trainer.py [--pool 3000] [--rounds 3] [--budget 50] [--out build/hf_trainer]

Needs ``pip install transformers accelerate datasets``.
"""

import argparse

import datasets
import torch
import transformers

from torch_al import ActivePool
from torch_al.datasets import as_float_images, load_fashion_mnist
from torch_al.integrations.transformers import ActiveLearningCallback, LabeledItems
from torch_al.models import tiny_vit
from torch_al.strategies import PFK


def fashion_mnist_pool(size: int, validation_size: int) -> tuple[ActivePool, tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    images, labels = load_fashion_mnist("train")
    images = as_float_images(images[: size + validation_size])
    table = datasets.Dataset.from_dict({"pixel_values": images[:size].numpy(), "label": labels[:size].tolist()}).with_format("torch")
    test_images, test_labels = load_fashion_mnist("test")
    validation = (images[size:], labels[size : size + validation_size])
    return ActivePool(table, input_key="pixel_values", target_key="label"), validation, (as_float_images(test_images[:2000]), test_labels[:2000])


@torch.no_grad()
def accuracy(model: torch.nn.Module, test: tuple[torch.Tensor, torch.Tensor]) -> float:
    model.eval()
    predicted = torch.cat([model(pixel_values=chunk).logits.argmax(1) for chunk in test[0].split(500)])
    return float((predicted == test[1]).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--out", default="build/hf_trainer")
    options = parser.parse_args()

    torch.manual_seed(0)
    pool, validation, test = fashion_mnist_pool(options.pool, 1000)
    pool.label(torch.arange(options.budget), pool.dataset_labels(torch.arange(options.budget)))  # a first labeled batch
    model = tiny_vit()
    strategy = PFK(validation=validation, tokens="first", progress=False)  # the blocks' class tokens
    callback = ActiveLearningCallback(pool, strategy, options.budget, oracle=pool.dataset_labels, state_path=f"{options.out}/pool.pt")
    for round_ in range(options.rounds):
        arguments = transformers.TrainingArguments(
            output_dir=f"{options.out}/round{round_}", num_train_epochs=10, per_device_train_batch_size=25, learning_rate=3e-3,
            save_strategy="no", report_to=[], use_cpu=True, seed=round_, logging_strategy="no", disable_tqdm=True,
        )  # fmt: skip
        labeled = pool.labeled_indices.numel()
        transformers.Trainer(model=model, args=arguments, train_dataset=LabeledItems(pool), callbacks=[callback]).train()
        print(f"round {round_}: trained on {labeled} labels, test accuracy {accuracy(model, test):.3f}; PFK chose {pool.ledger.index[-options.budget:].tolist()[:8]} ...")
    print(f"{pool!r}; state in {options.out}/pool.pt")


if __name__ == "__main__":
    main()
