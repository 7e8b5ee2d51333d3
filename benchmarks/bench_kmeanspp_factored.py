"""k-means++ seeding over gradient embeddings: torch_al.kmeanspp_factored against the dense way, in one run.

BADGE's embeddings are e_i = a_i ⊗ b_i (a: (N, C) = p − onehot(ŷ), b: (N, D) = the last layer's
input). The usual implementation forms the N × C·D embeddings and runs D² sampling over them.

Columns (one thread; times for the whole selection of P picks, embeddings formed included):
  ours          torch_al.kmeanspp_factored(a, b, P): distances from the factors, one pass over a and b per pick
  dense64       E = a ⊗ b formed in float64 (N × C·D), then per pick d² = |e|² + |e_c|² − 2 E e_c
                (a matrix-vector product), the running minimum, a float64 cumulative sum and a
                binary search: the same D² sampling with the same draws, so the same picks
  dense32       the same in float32 (what BADGE's released code stores): half dense64's bytes, but
                float32 distances move some draws across a row boundary, after which the picks
                differ from the exact ones (the column `agree` counts the leading picks that match)
  stream        the memory traffic alone, for scale: one float32 matrix-vector product per pick over b
                (the bytes ours reads) and over E (the bytes dense32 reads), interleaved in one
                process; E/b is the most any method that reads the factors once per pick can gain
                over dense32 on this machine at this moment
The dense baselines run DENSE_PICKS picks (their time per pick is constant: each pick is one pass
over E) and are extrapolated to P; ours runs all P. Peak extra memory: the growth of the peak
resident set over the inputs, each variant in a fresh process.
"""

import argparse
import time

import torch
from common import peak_rss_mib, print_table, reset_peak_rss, run_isolated, time_interleaved, write_results

N, C, D, P = 50_000, 10, 512, 1000
DENSE_PICKS = 50


def factors(n: int, c: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BADGE-like factors: a = softmax − onehot(argmax) of random logits, b a ReLU layer's output; the draws."""
    generator = torch.Generator().manual_seed(seed)
    p = (3 * torch.randn(n, c, generator=generator)).softmax(1)
    a = p - torch.nn.functional.one_hot(p.argmax(1), c).float()
    b = torch.randn(n, d, generator=generator).relu()
    return a, b, torch.rand(P, generator=generator, dtype=torch.float64)


def dense_kmeanspp(a: torch.Tensor, b: torch.Tensor, uniforms: torch.Tensor, dtype: torch.dtype) -> list[int]:
    """D² sampling over the formed embeddings, with the op's rules (largest embedding first)."""
    e = torch.einsum("nc,nd->ncd", a.to(dtype), b.to(dtype)).reshape(len(a), -1)
    squared_norms = torch.linalg.vector_norm(e, dim=1) ** 2
    picks = [int(squared_norms.argmax())]
    min_sq = torch.full((len(a),), float("inf"), dtype=torch.float64)
    selectable = torch.ones(len(a), dtype=torch.bool)
    selectable[picks[0]] = False
    for u in uniforms[1:].tolist():
        c = picks[-1]
        squared = (squared_norms + squared_norms[c] - 2 * (e @ e[c])).clamp_min(0).double()
        torch.minimum(min_sq, squared, out=min_sq)
        weights = torch.where(selectable, min_sq, 0.0)
        cumulative = weights.cumsum(0)
        total = float(cumulative[-1])
        if total == 0:
            pick = int(selectable.nonzero()[0])
        else:
            pick = int(torch.searchsorted(cumulative, torch.tensor([u * total], dtype=torch.float64), right=True))
            pick = pick if pick < len(a) else int((weights > 0).nonzero()[-1])
        picks.append(pick)
        selectable[picks[-1]] = False
    return picks


def measure(variant: str, n: int, c: int, d: int, picks: int) -> dict:
    """Runs one variant in this process (called through run_isolated): picks, seconds, peak extra MiB."""
    import torch_al  # noqa: F401  (registers the op)

    a, b, uniforms = factors(n, c, d)
    uniforms = uniforms[:picks]
    reset_peak_rss()
    baseline = peak_rss_mib()
    start = time.perf_counter()
    if variant == "ours":
        result = torch.ops.torch_al.kmeanspp_factored(a, b, uniforms)[0].tolist()
    else:
        result = dense_kmeanspp(a, b, uniforms, torch.float64 if variant == "dense64" else torch.float32)
    seconds = time.perf_counter() - start
    return {"picks": result, "seconds": seconds, "extra_mib": peak_rss_mib() - baseline}


def stream(n: int, c: int, d: int, picks: int) -> dict:
    """Seconds per pick of one matrix-vector product over b and over E (float32), interleaved."""
    a, b, _ = factors(n, c, d)
    e = torch.einsum("nc,nd->ncd", a, b).reshape(n, -1)
    times = time_interleaved({"b": lambda: [b @ b[i] for i in range(picks)], "E": lambda: [e @ e[i] for i in range(picks)]})
    return {name: seconds / picks for name, seconds in times.items()}


def main(quick: bool) -> str:
    torch.set_num_threads(1)  # the measuring processes inherit it
    n, picks, dense_picks = (5_000, 200, 50) if quick else (N, P, DENSE_PICKS)
    runs = {"ours": run_isolated("bench_kmeanspp_factored", "measure", variant="ours", n=n, c=C, d=D, picks=picks)}
    for variant in ("dense64", "dense32"):
        runs[variant] = run_isolated("bench_kmeanspp_factored", "measure", variant=variant, n=n, c=C, d=D, picks=dense_picks)
    streams = run_isolated("bench_kmeanspp_factored", "stream", n=n, c=C, d=D, picks=5)
    ours = runs["ours"]
    assert ours["picks"][:dense_picks] == runs["dense64"]["picks"], "ours and the exact dense D² sampling disagree"
    rows = []
    for name, run in runs.items():
        per_pick = run["seconds"] / len(run["picks"])
        agree = next((i for i, (x, y) in enumerate(zip(run["picks"], ours["picks"])) if x != y), len(run["picks"]))
        rows.append({
            "method": name, "N": n, "C": C, "D": D, "picks_run": len(run["picks"]), "seconds": run["seconds"],
            "seconds_for_P": per_pick * picks, "extra_mib": run["extra_mib"], "agree": agree,
        })
    for row in rows:
        row["time/ours"] = row["seconds_for_P"] / rows[0]["seconds_for_P"]
        row["memory/ours"] = row["extra_mib"] / max(rows[0]["extra_mib"], 1.0)
    columns = ["method", "N", "C", "D", "picks_run", "seconds", "seconds_for_P", "extra_mib", "agree", "time/ours", "memory/ours"]
    print_table(rows, columns)
    stream_ratio = streams["E"] / streams["b"]
    print(f"stream: {streams['b'] * 1e3:.3g} ms per pick over b, {streams['E'] * 1e3:.3g} ms over E: E/b = {stream_ratio:.3g}")
    return write_results(
        "kmeanspp_factored", rows, quick=quick, P=picks, dense_picks=dense_picks, threads=1,
        stream_b_s_per_pick=streams["b"], stream_e_s_per_pick=streams["E"], stream_e_over_b=stream_ratio,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N = 5000, under a minute")
    print(main(quick=parser.parse_args().quick))
