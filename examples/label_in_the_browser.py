"""Label a Fashion-MNIST query in the browser: the labeling page of ``torch-al annotate``, from Python.

A LeNet trains briefly on a few labeled images; entropy picks the next query from an unlabeled
pool; the page serves it at http://127.0.0.1:8765/ until Ctrl-C, every answer saved to the pool's
state file as it is given (restart the script and it carries on where you stopped).

    python examples/label_in_the_browser.py [--pool 3000] [--budget 24] [--out labeling_demo]

With ``--screenshot PNG`` it serves on a free port, answers a third of the query itself with the
dataset's own labels (as a person would, through the page's session), saves a picture of the page
taken by headless Chromium, and stops: the picture in the docs is made so.
"""

import argparse
import os
import shutil
import subprocess
import threading

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from torch_al import ActivePool
from torch_al.datasets import as_float_images, load_fashion_mnist
from torch_al.labeling_page import LabelingServer, LabelingSession
from torch_al.models import LeNet
from torch_al.strategies import Entropy

CLASSES = ["t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]


def trained_model(images: torch.Tensor, labels: torch.Tensor, epochs: int = 3) -> LeNet:
    torch.manual_seed(0)
    model = LeNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.5)
    for _ in range(epochs):
        for x, y in DataLoader(TensorDataset(images, labels), batch_size=25, shuffle=True):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
    return model.eval()


def prepared_pool(size: int, budget: int, state: str) -> ActivePool:
    """The pool, from its state file when one exists (a query pending), else with a new query."""
    images, labels = load_fashion_mnist("test")
    pool = ActivePool(TensorDataset(as_float_images(images[:size]), labels[:size]), classes=CLASSES)
    if os.path.exists(state):
        return pool.load(state)
    initial = torch.randperm(size, generator=torch.Generator().manual_seed(0))[:200]
    pool.label(initial, labels[initial])
    model = trained_model(as_float_images(images[initial]), labels[initial])
    query, scores = Entropy(progress=False).select(model, pool, budget, return_scores=True)
    pool.propose(query, scores, strategy="Entropy")
    pool.save(state)
    return pool


def screenshot(server: LabelingServer, path: str) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("--screenshot needs Chromium (apt-get install chromium)")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    command = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1100,640",
               "--virtual-time-budget=4000", f"--screenshot={os.path.abspath(path)}", server.url]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=3000)
    parser.add_argument("--budget", type=int, default=24)
    parser.add_argument("--out", default="labeling_demo", help="folder of the pool's state file")
    parser.add_argument("--screenshot", help="answer a third of the query, save a picture of the page here, and stop")
    args = parser.parse_args()
    state = os.path.join(args.out, "pool.pt")
    pool = prepared_pool(args.pool, args.budget, state)
    session = LabelingSession(pool, state)
    server = LabelingServer(session, port=0 if args.screenshot else 8765)
    if not args.screenshot:
        print(f"labeling page: {server.url}  (Ctrl-C stops it; answers are saved to {state})")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        return
    threading.Thread(target=server.serve_forever, daemon=True).start()
    query = pool.pending_query.tolist()
    for index in query[: len(query) // 3]:
        session.answer(index, int(pool.dataset[index][1]))
    screenshot(server, args.screenshot)
    server.shutdown()
    saved = ActivePool(pool.dataset, classes=CLASSES).load(state)
    print(f"{int(saved.labeled_mask[saved.pending_query].sum())} of {len(query)} answered; {saved!r}")


if __name__ == "__main__":
    main()
