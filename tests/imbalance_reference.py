"""Plain float64 references of GALAXY's and DIRECT's rounds, written from the papers' rules (as the
authors' code runs them) with Python lists and explicit graphs, for small pools. The random
choices use the same seeded torch generators as torch_al, so the two can be compared item by item."""

import itertools
import math

import torch

from torch_al.seeding import derived_seed


def class_line(probabilities: list[list[float]], k: int) -> list[int]:
    """Global indices from most to least k-like: predicted k first by p_k, then by p_k − max p."""

    def key(i):
        row = probabilities[i]
        top = max(row)
        return (1, row[k]) if row[k] == top else (0, row[k] - top)

    return sorted(range(len(probabilities)), key=lambda i: (tuple(-v for v in key(i)), i))


def signs_of(line, known: dict[int, int], k: int) -> list[int]:
    return [0 if i not in known else (1 if known[i] == k else -1) for i in line]


def galaxy_middle(signs: list[int], order: int):
    """Every path from a +1 to a −1 with unlabeled inner nodes, edges up to ``order`` apart and
    none between +1 and −1, by breadth-first search over whole paths; the middle (from the −1
    end) of the shortest, the smallest position among them."""
    n = len(signs)
    paths = [[p] for p in range(n) if signs[p] == 1]
    seen_length = None
    middles = []
    while paths and seen_length is None:
        longer = []
        for path in paths:
            for step in range(-order, order + 1):
                nxt = path[-1] + step
                if step == 0 or not 0 <= nxt < n or nxt in path:
                    continue
                if signs[nxt] == -1 and signs[path[-1]] == 0:
                    full = list(reversed(path + [nxt]))  # from the −1 end
                    length = len(full) - 1
                    middles.append(full[(length + 1) // 2])
                    seen_length = length
                elif signs[nxt] == 0:
                    longer.append(path + [nxt])
        paths = longer
    return min(middles) if middles else None


def galaxy_middle_by_distances(signs: list[int], order: int):
    """The same middle from breadth-first distances over the whole line (for lines too long to
    enumerate paths): D+ and D− through unlabeled positions, L = 1 + the least D+ next to a −1."""
    n = len(signs)

    def distances(source):
        hops = {p: 0 for p in range(n) if signs[p] == source}
        frontier = list(hops)
        while frontier:
            nxt = []
            for a in frontier:
                for b in range(max(0, a - order), min(n, a + order + 1)):
                    if signs[b] == 0 and b not in hops:
                        hops[b] = hops[a] + 1
                        nxt.append(b)
            frontier = nxt
        return hops

    plus, minus = distances(1), distances(-1)
    ends = [plus[u] + 1 for u in plus if signs[u] == 0 and any(signs[q] == -1 for q in range(max(0, u - order), min(n, u + order + 1)))]
    if not ends:
        return None
    length = min(ends)
    steps = (length + 1) // 2
    middles = [u for u in range(n) if signs[u] == 0 and minus.get(u) == steps and plus.get(u) == length - steps]
    return min(middles)


def galaxy_round(probabilities, known: dict[int, int], oracle, budget: int, seed: int, round_: int) -> list[int]:
    classes = [0] if len(probabilities[0]) == 2 else list(range(len(probabilities[0])))
    lines = {k: class_line(probabilities, k) for k in classes}
    known, asked, orders = dict(known), [], dict.fromkeys(classes, 1)
    for step in range(budget):
        k = classes[step % len(classes)]
        signs = signs_of(lines[k], known, k)
        position = galaxy_middle(signs, 1)
        if position is None and orders[k] > 1:
            position = galaxy_middle(signs, orders[k])
        if position is None and orders[k] < len(signs) - 1 and 1 in signs and -1 in signs:
            orders[k] += 1
            position = galaxy_middle(signs, orders[k])
        if position is None:
            draws = torch.Generator().manual_seed(derived_seed(seed, "galaxy draw", step, round_))
            item = int(torch.randint(len(probabilities), (1,), generator=draws))
            while item in known:  # uniform over the unlabeled items: redraw a labeled one
                item = int(torch.randint(len(probabilities), (1,), generator=draws))
        else:
            item = lines[k][position]
        known[item] = oracle(item)
        asked.append(item)
    return asked


def _generator(seed, *purpose):
    return torch.Generator().manual_seed(derived_seed(seed, "direct", *purpose))


def direct_region(signs: list[int]) -> tuple[int, int]:
    labeled = [p for p, s in enumerate(signs) if s]
    start = 0
    for before, p in zip([None] + labeled, labeled):
        if signs[p] == -1:
            start = before if before is not None else 0
            break
    else:
        start = labeled[-1] if labeled else 0
    end = len(signs) - 1
    for after, p in zip([None] + labeled[::-1], labeled[::-1]):
        if signs[p] == 1:
            end = after if after is not None else len(signs) - 1
            break
    else:
        end = labeled[0] if labeled else len(signs) - 1
    return start, end


def direct_scores(signs: list[int]) -> list[int]:
    return [sum(signs[:h]) - sum(signs[h:]) for h in range(len(signs) + 1)]


def direct_shrunk(signs: list[int], start: int, end: int, target: int, coin: torch.Generator) -> tuple[int, int]:
    acc = direct_scores(signs)
    while sum(1 for p in range(start, end + 1) if signs[p] == 0) > target:
        if acc[start] < acc[end] or (acc[start] == acc[end] and torch.rand((), generator=coin) < 0.5):
            start += 1
        else:
            end -= 1
    return start, end


def direct_round(probabilities, known: dict[int, int], oracle, budget: int, seed: int, round_: int, annotators: int, most: int) -> list[list[int]]:
    classes = len(probabilities[0])
    n = len(probabilities)
    known, batches = dict(known), []
    counts = [sum(1 for v in known.values() if v == k) for k in range(classes)]
    per_class = min(budget // classes // 2, most)
    for k in sorted(range(classes), key=lambda c: (-counts[c], c)):
        line = class_line(probabilities, k)
        per_class = min(per_class, n - len(known))
        signs = signs_of(line, known, k)
        start, end = direct_region(signs)
        left_labels, batch = per_class, 0
        while left_labels > 0:
            size = min(annotators, left_labels)
            inside = [p for p in range(start, end + 1) if signs[p] == 0]
            if not inside:
                break
            drawn = torch.tensor(inside)[torch.randperm(len(inside), generator=_generator(seed, "draw", round_, k, batch))[:size]].tolist()
            for p in drawn:
                known[line[p]] = oracle(line[p])
            batches.append([line[p] for p in drawn])
            signs = signs_of(line, known, k)
            left = sum(1 for p in range(start, end + 1) if signs[p] == 0)
            to_come = left_labels // annotators
            if left > 0 and to_come > 1:
                target = math.ceil(left / left ** (1 / to_come))
                start, end = direct_shrunk(signs, start, end, target, _generator(seed, "coin", round_, k, batch))
            left_labels -= size
            batch += 1
    rest = budget - sum(map(len, batches))
    order = torch.randperm(classes, generator=_generator(seed, "classes", round_)).tolist()
    for place, k in enumerate(order):
        share = rest * (place + 1) // classes - rest * place // classes
        if not share:
            continue
        line = class_line(probabilities, k)
        signs = signs_of(line, known, k)
        acc = direct_scores(signs)
        best = acc.index(max(acc))
        walk = [p for pair in itertools.zip_longest(range(best - 1, -1, -1), range(best, n)) for p in pair if p is not None]
        picked = [line[p] for p in walk if signs[p] == 0][:share]
        for i in picked:
            known[i] = oracle(i)
        batches.append(picked)
    return batches
