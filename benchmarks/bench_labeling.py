"""The labeling side: what showing an item and recording one answer cost, in one run.

  png       our PNG encoder (torch_al.item_views.png_bytes) against Pillow's (the same zlib level,
            6), per image, for a Fashion-MNIST-sized grey image and a 224 x 224 RGB one; the
            decoded pixels are checked equal first. Ratio ours/pillow (< 1: ours is faster).
  answer    one answer on the labeling page (LabelingSession.answer: the state file read, the label
            recorded, the file written, the page's state built) against what ``torch-al label``
            does for one answer (ActivePool.label + save, the state already in memory), for
            ledgers of L rows in a pool of 70 000 items; the state file's load alone beside them.
            Ratio page/label: the price of reading the file before every answer.
"""

import argparse
import io
import os
import tempfile
import time

import numpy as np
import torch
from common import print_table, time_interleaved, write_results
from PIL import Image
from torch.utils.data import TensorDataset

from torch_al import ActivePool
from torch_al.item_views import png_bytes
from torch_al.labeling_page import LabelingSession

IMAGES = {"grey 28x28": (1, 28, 28), "rgb 224x224": (3, 224, 224)}
POOL = 70_000
LEDGERS = [1_000, 10_000, 60_000]
QUICK_LEDGERS = [1_000]
ANSWERS = 100
CLASSES = [f"class {k}" for k in range(10)]


def pillow_png(image: torch.Tensor) -> bytes:
    pixels = image.permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def png_row(name: str, shape: tuple[int, ...], quick: bool) -> dict:
    # A photograph-like image (smooth, with noise), not white noise, which no encoder compresses.
    generator = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(1, shape[0], 8, 8, generator=generator), size=shape[1:], mode="bilinear")[0]
    image = (smooth * 200 + torch.rand(shape, generator=generator) * 55).to(torch.uint8)
    ours, theirs = png_bytes(image), pillow_png(image)
    for encoded in (ours, theirs):
        decoded = np.asarray(Image.open(io.BytesIO(encoded)))
        assert np.array_equal(decoded, image.permute(1, 2, 0).numpy().squeeze(2) if shape[0] == 1 else image.permute(1, 2, 0).numpy())
    repeats = 20 if quick else 200
    times = time_interleaved({"ours": lambda: [png_bytes(image) for _ in range(repeats)], "pillow": lambda: [pillow_png(image) for _ in range(repeats)]}, repeats=5)
    return {
        "workload": f"png {name}",
        "ours_ms": 1e3 * times["ours"] / repeats,
        "baseline_ms": 1e3 * times["pillow"] / repeats,
        "ours/baseline": times["ours"] / times["pillow"],
        "ours_bytes": len(ours),
        "pillow_bytes": len(theirs),
    }


def pool_with_ledger(ledger: int, query: int) -> ActivePool:
    images = torch.zeros(POOL, 1, 28, 28, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(POOL) % 251  # items differ, for the fingerprint
    pool = ActivePool(TensorDataset(images), target_key=None, classes=CLASSES)
    pool.label(torch.arange(ledger), torch.arange(ledger) % len(CLASSES))
    pool.propose(torch.arange(ledger, ledger + query), strategy="entropy")
    return pool


def answer_row(ledger: int, quick: bool) -> dict:
    answers = 20 if quick else ANSWERS
    with tempfile.TemporaryDirectory() as folder:
        page_state, label_state = os.path.join(folder, "page.pt"), os.path.join(folder, "label.pt")
        page_pool, label_pool = pool_with_ledger(ledger, answers + 1), pool_with_ledger(ledger, answers + 1)
        page_pool.save(page_state)
        session = LabelingSession(page_pool, page_state)
        asked = list(range(ledger, ledger + answers))
        spent = {"page": 0.0, "label": 0.0, "load": 0.0}
        for index in asked:  # taking turns, so that machine load weighs on both alike
            start = time.perf_counter()
            session.answer(index, index % len(CLASSES))
            spent["page"] += time.perf_counter() - start
            start = time.perf_counter()
            label_pool.label([index], [index % len(CLASSES)])
            label_pool.save(label_state)
            spent["label"] += time.perf_counter() - start
            start = time.perf_counter()
            label_pool.load(label_state)
            spent["load"] += time.perf_counter() - start
        size = os.path.getsize(page_state)
    return {
        "workload": f"answer, ledger {ledger}",
        "ours_ms": 1e3 * spent["page"] / answers,
        "baseline_ms": 1e3 * spent["label"] / answers,
        "ours/baseline": spent["page"] / spent["label"],
        "load_ms": 1e3 * spent["load"] / answers,
        "state_kib": size / 1024,
    }


def main(quick: bool) -> str:
    torch.set_num_threads(1)
    rows = [png_row(name, shape, quick) for name, shape in IMAGES.items()]
    rows += [answer_row(ledger, quick) for ledger in (QUICK_LEDGERS if quick else LEDGERS)]
    print_table(rows, ["workload", "ours_ms", "baseline_ms", "ours/baseline", "ours_bytes", "pillow_bytes", "load_ms", "state_kib"])
    return write_results("labeling", rows, quick=quick, threads=1, pool=POOL)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(main(parser.parse_args().quick))
