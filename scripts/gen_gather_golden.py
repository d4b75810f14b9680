#!/usr/bin/python3
"""Write zoo/ssl/testdata/gather_golden.json: a PyTorch reference for
gathering with gradient (zoo/ssl gatherRows) under SimCLR's NT-Xent on two
data-parallel ranks, with the semantics of torch.distributed.nn.all_gather,
whose backward is a reduce-scatter (sum) of the output gradients.

Run with Debian's torch: /usr/bin/python3 scripts/gen_gather_golden.py
(the Go test TestGatherRowsMatchesTorch reads the file). Add --no-dist to
skip the cross-check on two real gloo processes (below).

What it computes, for K = 2 ranks of n images with d-dimensional
embeddings (rank r holds z1_r and z2_r [n, d], the projections of its
images' two views; float32 inputs, everything in float64):

- loss_q, the per-rank loss exactly as Go's ntXent computes it on rank q:
  the local rows [z1_q; z2_q] (2n anchors) are L2-normalised and compared
  with the gathered normalised rows of every rank in rank order,
  [z1_0; z2_0; z1_1; z2_1] (4n columns), logits divided by the
  temperature, each anchor's own column (2n*q + i) masked out, the
  positive of anchor i at column 2n*q + (i + n) mod 2n, cross-entropy
  averaged over the 2n local anchors.
- grad_z1 / grad_z2 of rank r: the gradient each rank's inputs receive in
  DDP before parameter gradients are averaged. Every rank backpropagates
  its own loss_q (runStep calls Backward on it; meanLoss only logs the
  mean) through the gather, whose backward sums over the ranks, so rank r
  gets sum_q d loss_q / d z_r. One process simulates this exactly by
  building all ranks' losses in one graph, where the gather is a plain
  concatenation, and backpropagating sum_q loss_q.
- wrong_grad_z1 / wrong_grad_z2 of rank r: the known mistake (the
  GatherLayer of lightly-ai/lightly issue 1528) whose backward keeps only
  this rank's slice of this rank's output gradient, with no sum over
  ranks: rank r gets d loss_r / d z_r only.
- whole: NT-Xent of one rank on the whole batch, Z1 = [z1_0; z1_1] and
  Z2 = [z2_0; z2_1] (2n rows per view), written as SimCLR's masked
  similarity matrix, with its gradient.

The script asserts the relation between the two: every anchor sees the
same 4n - 1 other rows in both runs, so the whole-batch loss is the mean
of the per-rank losses, L = (1/K) sum_q loss_q, and therefore
  K * dL/dZ[rows of rank r] = sum_q d loss_q / d z_r = grad_z of rank r;
averaging the parameter gradients over the K ranks (runStep) then gives
exactly the whole-batch parameter gradient. The wrong variant breaks it.

Unless --no-dist is given it also runs the same two ranks as two gloo
processes with torch.distributed.nn.functional.all_gather and asserts the
real per-rank losses and input gradients equal the simulated ones.
"""
import json
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

K, N, D, TAU = 2, 4, 8, 0.5
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "zoo", "ssl", "testdata", "gather_golden.json")


def enc(x):
    x = x.detach().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return {"shape": list(x.shape), "data": [float("%.10g" % v) for v in np.asarray(x, dtype=np.float64).reshape(-1)]}


def rank_loss(z1, z2, gathered, rank, tau):
    """NT-Xent of rank's 2n local anchors against gathered [K*2n, d] (each
    rank's normalised [z1; z2], rank order), as Go's ntXent."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2], 0), dim=1)
    off = 2 * n * rank
    sim = z @ gathered.t() / tau
    own = torch.zeros(sim.shape, dtype=torch.bool)
    own[torch.arange(2 * n), off + torch.arange(2 * n)] = True
    sim = sim.masked_fill(own, float("-inf"))
    labels = off + torch.cat([torch.arange(n) + n, torch.arange(n)])
    return F.cross_entropy(sim, labels)


def local_block(z1, z2):
    return F.normalize(torch.cat([z1, z2], 0), dim=1)


def nt_xent(z1, z2, tau):
    """One-rank NT-Xent, as scripts/gen_ssl_golden.py writes it."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2], 0), dim=1)
    sim = z @ z.t() / tau
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    labels = torch.cat([torch.arange(n) + n, torch.arange(n)])
    return F.cross_entropy(sim, labels)


def leaves(arrays):
    return [torch.tensor(a.astype(np.float64), requires_grad=True) for a in arrays]


def simulate(x1, x2):
    """All K ranks in one graph: the gather is a concatenation, and the
    backward of sum_q loss_q gives rank r sum_q d loss_q / d z_r, which is
    what torch.distributed.nn.all_gather's reduce-scatter hands rank r."""
    z1, z2 = leaves(x1), leaves(x2)
    gathered = torch.cat([local_block(z1[r], z2[r]) for r in range(K)], 0)
    losses = [rank_loss(z1[q], z2[q], gathered, q, TAU) for q in range(K)]
    torch.stack(losses).sum().backward()
    return [l.item() for l in losses], [t.grad for t in z1], [t.grad for t in z2]


def wrong(x1, x2):
    """Lightly issue 1528: the gather's backward keeps only this rank's
    slice of this rank's own output gradient, so rank r gets d loss_r / d z_r
    and the other ranks' losses never reach its rows."""
    g1, g2 = [], []
    for r in range(K):
        z1, z2 = leaves(x1), leaves(x2)
        blocks = [local_block(z1[q], z2[q]) for q in range(K)]
        blocks = [b if q == r else b.detach() for q, b in enumerate(blocks)]
        rank_loss(z1[r], z2[r], torch.cat(blocks, 0), r, TAU).backward()
        g1.append(z1[r].grad)
        g2.append(z2[r].grad)
    return g1, g2


def dist_worker(rank, init, x1, x2, outdir):
    import torch.distributed as dist
    import torch.distributed.nn.functional as dnn
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=K)
    z1, z2 = leaves([x1[rank], x2[rank]])
    gathered = torch.cat(dnn.all_gather(local_block(z1, z2)), 0)
    loss = rank_loss(z1, z2, gathered, rank, TAU)
    loss.backward()
    torch.save({"loss": loss.item(), "z1": z1.grad, "z2": z2.grad}, os.path.join(outdir, "rank%d.pt" % rank))
    dist.barrier()
    dist.destroy_process_group()


def real_dist(x1, x2):
    """The same K ranks as K gloo processes with torch.distributed.nn."""
    import torch.multiprocessing as mp
    with tempfile.TemporaryDirectory() as tmp:
        init = "file://" + os.path.join(tmp, "rendezvous")
        mp.spawn(dist_worker, args=(init, x1, x2, tmp), nprocs=K, join=True)
        return [torch.load(os.path.join(tmp, "rank%d.pt" % r)) for r in range(K)]


def main():
    rng = np.random.default_rng(20250216)
    # View 2 at a larger scale so the normalisation's gradient matters.
    x1 = [rng.standard_normal((N, D)).astype(np.float32) for _ in range(K)]
    x2 = [(rng.standard_normal((N, D)) * 3.0).astype(np.float32) for _ in range(K)]

    losses, g1, g2 = simulate(x1, x2)
    w1, w2 = wrong(x1, x2)

    Z1, Z2 = leaves([np.concatenate(x1, 0), np.concatenate(x2, 0)])
    whole = nt_xent(Z1, Z2, TAU)
    whole.backward()

    # The relation: L_whole = mean_q loss_q; K * dL_whole/dZ[rank r's rows]
    # = sum_q d loss_q / d z_r (the DDP input gradient of rank r).
    assert abs(whole.item() - sum(losses) / K) < 1e-12, (whole.item(), losses)
    worst = 0.0
    for r in range(K):
        rows = slice(r * N, (r + 1) * N)
        for got, want in ((g1[r], Z1.grad[rows]), (g2[r], Z2.grad[rows])):
            worst = max(worst, (got - K * want).abs().max().item())
    assert worst < 1e-12, worst
    # The wrong variant must be far off (1000 times the Go test's 1e-5 of
    # the largest value), else the test could not tell them apart.
    apart = max(max((g1[r] - w1[r]).abs().max().item(), (g2[r] - w2[r]).abs().max().item()) for r in range(K))
    scale = max(max(g1[r].abs().max().item(), g2[r].abs().max().item()) for r in range(K))
    assert apart > 1e-2 * scale, (apart, scale)

    checked = False
    if "--no-dist" not in sys.argv:
        real = real_dist(x1, x2)
        for r in range(K):
            assert abs(real[r]["loss"] - losses[r]) < 1e-12, (r, real[r]["loss"], losses[r])
            assert (real[r]["z1"] - g1[r]).abs().max().item() < 1e-12
            assert (real[r]["z2"] - g2[r]).abs().max().item() < 1e-12
        checked = True

    out = {
        "generator": "scripts/gen_gather_golden.py", "torch": torch.__version__,
        "k": K, "n": N, "d": D, "temperature": TAU,
        "checked_with_torch_distributed": checked,
        "ranks": [{"z1": enc(x1[r]), "z2": enc(x2[r]), "loss": losses[r],
                   "grad_z1": enc(g1[r]), "grad_z2": enc(g2[r]),
                   "wrong_grad_z1": enc(w1[r]), "wrong_grad_z2": enc(w2[r])} for r in range(K)],
        "mean_loss": sum(losses) / K,
        "whole": {"z1": enc(np.concatenate(x1, 0)), "z2": enc(np.concatenate(x2, 0)), "loss": whole.item(),
                  "grad_z1": enc(Z1.grad), "grad_z2": enc(Z2.grad)},
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f, indent=None)
        f.write("\n")
    print("losses per rank %s, whole batch %.10g; K*whole-batch gradient = DDP gradient within %.2g; "
          "wrong variant off by %.3g of the largest %.3g; torch.distributed check %s; wrote %s"
          % (["%.10g" % l for l in losses], whole.item(), worst, apart, scale,
             "passed" if checked else "skipped", os.path.normpath(OUT)))


if __name__ == "__main__":
    main()
