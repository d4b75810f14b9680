#!/usr/bin/python3
"""Write zoo/ssl/testdata/ssl_golden.json: PyTorch reference values for the
self-supervised objectives in zoo/ssl (loss value, gradients with respect to
the embeddings, and SwAV's Sinkhorn-Knopp assignments), Barlow Twins,
VICReg, SimSiam and DINO included.

Run with Debian's torch: /usr/bin/python3 scripts/gen_ssl_golden.py
(the Go test TestLossGolden reads the file; regenerate after changing cases).

Inputs are drawn in float32 and every reference is computed in float64 from
them, written the way the methods' public PyTorch code writes it (SimCLR's
masked similarity matrix, MoCo's l_pos/l_neg concatenation, MoCo v3's
contrastive_loss scaled by 2*T, BYOL's 2 - 2 cos, SwAV's
distributed_sinkhorn and swapped prediction, Barlow Twins' BatchNorm1d and
cross-correlation, VICReg's three terms, SimSiam's CosineSimilarity with
detach, DINO's centred and sharpened teacher targets and its centre
update), so the Go compositions are
checked against an independent formulation.
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

rng = np.random.default_rng(20240917)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "zoo", "ssl", "testdata", "ssl_golden.json")


def draw(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def unit_rows(a):
    a = a.astype(np.float64)
    return (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)


def t64(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def enc(x):
    x = x.detach().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return {"shape": list(x.shape), "data": [float("%.10g" % v) for v in np.asarray(x, dtype=np.float64).reshape(-1)]}


cases = []


# --- SimCLR NT-Xent: 2N views, the positive of row i is the other view of
# the same image, self-similarity excluded from the denominator.
def nt_xent(z1, z2, tau):
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2], 0), dim=1)
    sim = z @ z.t() / tau
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    labels = torch.cat([torch.arange(n) + n, torch.arange(n)])
    return F.cross_entropy(sim, labels)


for name, n, d, tau in [("ntxent_n4_d8_t05", 4, 8, 0.5), ("ntxent_n6_d5_t01", 6, 5, 0.1), ("ntxent_n1_d3_t02", 1, 3, 0.2)]:
    a, b = draw(n, d), draw(n, d, scale=3.0)
    z1, z2 = t64(a, True), t64(b, True)
    loss = nt_xent(z1, z2, tau)
    loss.backward()
    cases.append({"name": name, "kind": "ntxent", "attrs": {"temperature": tau},
                  "inputs": {"z1": enc(a), "z2": enc(b)}, "loss": loss.item(),
                  "grads": {"z1": enc(z1.grad), "z2": enc(z2.grad)}})


# --- MoCo v2 InfoNCE against a queue of negatives (queue [dim, K] as in
# MoCo's buffer, keys normalised and detached).
def moco_infonce(q, k, queue, tau):
    q = F.normalize(q, dim=1)
    k = F.normalize(k, dim=1).detach()
    l_pos = torch.einsum("nc,nc->n", [q, k]).unsqueeze(-1)
    l_neg = torch.einsum("nc,ck->nk", [q, queue])
    logits = torch.cat([l_pos, l_neg], dim=1) / tau
    labels = torch.zeros(logits.shape[0], dtype=torch.long)
    return F.cross_entropy(logits, labels)


for name, n, d, kq, tau in [("infonce_n4_d8_k16_t02", 4, 8, 16, 0.2), ("infonce_n3_d6_k5_t007", 3, 6, 5, 0.07)]:
    a, b = draw(n, d), draw(n, d)
    queue = unit_rows(draw(kq, d)).T.copy()  # columns are unit keys
    q, k = t64(a, True), t64(b, True)
    loss = moco_infonce(q, k, t64(queue), tau)
    loss.backward()
    cases.append({"name": name, "kind": "infonce", "attrs": {"temperature": tau},
                  "inputs": {"q": enc(a), "k": enc(b), "queue": enc(queue)}, "loss": loss.item(),
                  "grads": {"q": enc(q.grad)}})


# --- MoCo v3 symmetric contrastive loss (in-batch negatives, * 2T).
def mocov3_ctr(q, k, tau):
    q = F.normalize(q, dim=1)
    k = F.normalize(k, dim=1)
    logits = torch.einsum("nc,mc->nm", [q, k]) / tau
    labels = torch.arange(logits.shape[0], dtype=torch.long)
    return F.cross_entropy(logits, labels) * (2 * tau)


for name, n, d, tau in [("mocov3_n4_d8_t1", 4, 8, 1.0), ("mocov3_n5_d6_t02", 5, 6, 0.2)]:
    arrs = [draw(n, d) for _ in range(4)]
    q1, q2 = t64(arrs[0], True), t64(arrs[1], True)
    k1, k2 = t64(arrs[2]), t64(arrs[3])
    loss = mocov3_ctr(q1, k2, tau) + mocov3_ctr(q2, k1, tau)
    loss.backward()
    cases.append({"name": name, "kind": "mocov3", "attrs": {"temperature": tau},
                  "inputs": {"q1": enc(arrs[0]), "q2": enc(arrs[1]), "k1": enc(arrs[2]), "k2": enc(arrs[3])},
                  "loss": loss.item(), "grads": {"q1": enc(q1.grad), "q2": enc(q2.grad)}})


# --- BYOL: 2 - 2 cos(p, z_target), symmetrised, mean over the batch.
def byol_fn(x, y):
    x = F.normalize(x, dim=-1, p=2)
    y = F.normalize(y, dim=-1, p=2)
    return 2 - 2 * (x * y).sum(dim=-1)


for name, n, d in [("byol_n5_d6", 5, 6), ("byol_n2_d16", 2, 16)]:
    arrs = [draw(n, d) for _ in range(4)]
    p1, p2 = t64(arrs[0], True), t64(arrs[1], True)
    z1, z2 = t64(arrs[2]), t64(arrs[3])
    loss = (byol_fn(p1, z2.detach()) + byol_fn(p2, z1.detach())).mean()
    loss.backward()
    cases.append({"name": name, "kind": "byol", "attrs": {},
                  "inputs": {"p1": enc(arrs[0]), "p2": enc(arrs[1]), "z1": enc(arrs[2]), "z2": enc(arrs[3])},
                  "loss": loss.item(), "grads": {"p1": enc(p1.grad), "p2": enc(p2.grad)}})


# --- SwAV: distributed_sinkhorn (world size 1) and the swapped prediction
# over multi-crop views, assignments from the global crops only.
def sinkhorn(out, eps, iters):
    Q = torch.exp(out / eps).t()  # K x B
    B = Q.shape[1]
    K = Q.shape[0]
    Q /= torch.sum(Q)
    for _ in range(iters):
        Q /= torch.sum(Q, dim=1, keepdim=True)
        Q /= K
        Q /= torch.sum(Q, dim=0, keepdim=True)
        Q /= B
    Q *= B
    return Q.t()


def swav(z_raw, protos, bs, nmb_crops, assign, temp, eps, iters, queue=None):
    z = F.normalize(z_raw, dim=1, p=2)
    output = z @ protos.t()
    total = sum(nmb_crops)
    loss = 0
    codes = []
    for i, crop_id in enumerate(assign):
        with torch.no_grad():
            out = output[bs * crop_id: bs * (crop_id + 1)].detach()
            if queue is not None:
                out = torch.cat((queue[i] @ protos.t().detach(), out))
            q = sinkhorn(out, eps, iters)[-bs:]
        codes.append(q)
        subloss = 0
        for v in np.delete(np.arange(total), crop_id):
            x = output[bs * v: bs * (v + 1)] / temp
            subloss -= torch.mean(torch.sum(q * F.log_softmax(x, dim=1), dim=1))
        loss += subloss / (total - 1)
    return loss / len(assign), codes


for name, bs, d, k, crops, lq in [("swav_b4_d8_k10_2x2", 4, 8, 10, [2, 2], 0),
                                   ("swav_b5_d6_k7_2x0", 5, 6, 7, [2], 0),
                                   ("swav_b3_d8_k6_2x1_queue9", 3, 8, 6, [2, 1], 9)]:
    v = sum(crops)
    za = draw(v * bs, d)
    wa = unit_rows(draw(k, d))
    qa = np.stack([unit_rows(draw(lq, d)) for _ in range(2)]) if lq else None
    z, w = t64(za, True), t64(wa, True)
    loss, codes = swav(z, w, bs, crops, [0, 1], 0.1, 0.05, 3, None if qa is None else t64(qa))
    loss.backward()
    inputs = {"z": enc(za), "prototypes": enc(wa)}
    if qa is not None:
        inputs["queue"] = enc(qa)
    cases.append({"name": name, "kind": "swav",
                  "attrs": {"batch": bs, "crops": v, "temperature": 0.1, "epsilon": 0.05, "iterations": 3},
                  "inputs": inputs, "loss": loss.item(),
                  "codes": [enc(c) for c in codes],
                  "grads": {"z": enc(z.grad), "prototypes": enc(w.grad)}})

# Sinkhorn alone on wider score ranges (rows of unit vectors times unit
# prototypes stay in [-1, 1]; these reach the edges).
for name, b, k in [("sinkhorn_b8_k5", 8, 5), ("sinkhorn_b3_k12", 3, 12)]:
    s = np.clip(draw(b, k, scale=0.6), -1, 1).astype(np.float32)
    q = sinkhorn(t64(s), 0.05, 3)
    cases.append({"name": name, "kind": "sinkhorn", "attrs": {"epsilon": 0.05, "iterations": 3},
                  "inputs": {"scores": enc(s)}, "codes": [enc(q)]})

# The cases below come after the ones above so that adding them left the
# earlier draws, and so the earlier cases, as they were.


def off_diag(m):
    return m[~torch.eye(m.shape[0], dtype=torch.bool)]


def column_scales(d):
    # spread the per-dimension std across VICReg's hinge at 1
    return np.linspace(0.3, 2.0, d).astype(np.float32)


# --- Barlow Twins: affine-free BatchNorm1d of each view (training mode),
# cross-correlation over the batch, on-diagonal to 1, off-diagonal to 0.
def barlow(z1, z2, lambd):
    n, d = z1.shape
    bn = torch.nn.BatchNorm1d(d, affine=False).double()
    c = bn(z1).t() @ bn(z2) / n
    on = (torch.diagonal(c) - 1).pow(2).sum()
    return on + lambd * off_diag(c).pow(2).sum()


for name, n, d, lambd in [("barlow_n6_d5_l5e-3", 6, 5, 5e-3), ("barlow_n2_d4_l05", 2, 4, 0.5), ("barlow_n9_d12_l5e-3", 9, 12, 5e-3)]:
    a, b = draw(n, d), draw(n, d, scale=2.0)
    b = (b + a).astype(np.float32)  # correlated views, as two augmentations are
    z1, z2 = t64(a, True), t64(b, True)
    loss = barlow(z1, z2, lambd)
    loss.backward()
    cases.append({"name": name, "kind": "barlow", "attrs": {"lambda": lambd},
                  "inputs": {"z1": enc(a), "z2": enc(b)}, "loss": loss.item(),
                  "grads": {"z1": enc(z1.grad), "z2": enc(z2.grad)}})


# --- VICReg: MSE invariance, hinge on the per-dimension std (unbiased
# variance + eps), squared off-diagonal covariance / d; weights 25/25/1.
def vicreg(x, y, sim, var, cov, gamma, eps):
    n, d = x.shape
    inv = F.mse_loss(x, y)
    x, y = x - x.mean(dim=0), y - y.mean(dim=0)
    std_x, std_y = torch.sqrt(x.var(dim=0) + eps), torch.sqrt(y.var(dim=0) + eps)
    std = torch.mean(F.relu(gamma - std_x)) / 2 + torch.mean(F.relu(gamma - std_y)) / 2
    cov_x, cov_y = x.t() @ x / (n - 1), y.t() @ y / (n - 1)
    c = off_diag(cov_x).pow(2).sum() / d + off_diag(cov_y).pow(2).sum() / d
    return sim * inv + var * std + cov * c


for name, n, d, w in [("vicreg_n6_d5", 6, 5, (25.0, 25.0, 1.0)), ("vicreg_n8_d10", 8, 10, (25.0, 25.0, 1.0)),
                      ("vicreg_n3_d4_w", 3, 4, (1.0, 2.0, 3.0))]:
    a = draw(n, d) * column_scales(d)
    b = (a + draw(n, d, scale=0.5)).astype(np.float32)
    a = a.astype(np.float32)
    z1, z2 = t64(a, True), t64(b, True)
    loss = vicreg(z1, z2, *w, 1.0, 1e-4)
    loss.backward()
    cases.append({"name": name, "kind": "vicreg",
                  "attrs": {"invariance": w[0], "variance": w[1], "covariance": w[2], "gamma": 1.0, "epsilon": 1e-4},
                  "inputs": {"z1": enc(a), "z2": enc(b)}, "loss": loss.item(),
                  "grads": {"z1": enc(z1.grad), "z2": enc(z2.grad)}})


# --- SimSiam: -(cos(p1, sg(z2)) + cos(p2, sg(z1))) / 2, mean over the batch.
cosine = torch.nn.CosineSimilarity(dim=1)
for name, n, d in [("simsiam_n5_d6", 5, 6), ("simsiam_n2_d16", 2, 16)]:
    arrs = [draw(n, d) for _ in range(4)]
    p1, p2 = t64(arrs[0], True), t64(arrs[1], True)
    z1, z2 = t64(arrs[2], True), t64(arrs[3], True)
    loss = -(cosine(p1, z2.detach()).mean() + cosine(p2, z1.detach()).mean()) * 0.5
    loss.backward()
    assert z1.grad is None and z2.grad is None
    cases.append({"name": name, "kind": "simsiam", "attrs": {},
                  "inputs": {"p1": enc(arrs[0]), "p2": enc(arrs[1]), "z1": enc(arrs[2]), "z2": enc(arrs[3])},
                  "loss": loss.item(), "grads": {"p1": enc(p1.grad), "p2": enc(p2.grad)}})



# --- DINO: the teacher's global crops, centred and sharpened, are soft
# targets for the student's log-softmax on every crop of another view;
# the centre then moves towards the teacher's batch mean. Head outputs are
# cosines against unit prototypes, so the inputs are drawn in [-1, 1].
def dino(student, teacher, center, bs, s_temp, t_temp):
    crops, glob = student.shape[0] // bs, teacher.shape[0] // bs
    logp = F.log_softmax(student / s_temp, dim=1)
    with torch.no_grad():
        q = torch.softmax((teacher - center) / t_temp, dim=1)
    terms = []
    for g in range(glob):
        for v in range(crops):
            if v != g:
                rows = -(q[g * bs:(g + 1) * bs] * logp[v * bs:(v + 1) * bs]).sum(dim=1)
                terms.append(rows.mean())
    return torch.stack(terms).mean()


for name, bs, k, crops, s_temp, t_temp in [("dino_b4_k10_2x2_t004", 4, 10, 4, 0.1, 0.04),
                                           ("dino_b3_k7_2x0_t007", 3, 7, 2, 0.1, 0.07),
                                           ("dino_b2_k16_2x4_t0055", 2, 16, 6, 0.2, 0.055)]:
    sa = np.clip(draw(crops * bs, k, scale=0.5), -1, 1).astype(np.float32)
    ta = np.clip(draw(2 * bs, k, scale=0.5), -1, 1).astype(np.float32)
    ca = draw(k, scale=0.1)
    st, te = t64(sa, True), t64(ta, True)
    loss = dino(st, te, t64(ca), bs, s_temp, t_temp)
    loss.backward()
    assert te.grad is None
    momentum = 0.9
    center_after = t64(ca) * momentum + te.detach().mean(dim=0) * (1 - momentum)
    cases.append({"name": name, "kind": "dino",
                  "attrs": {"batch": bs, "student_temperature": s_temp, "teacher_temperature": t_temp,
                            "center_momentum": momentum},
                  "inputs": {"student": enc(sa), "teacher": enc(ta), "center": enc(ca)}, "loss": loss.item(),
                  "grads": {"student": enc(st.grad)}, "center_after": enc(center_after)})

os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as f:
    json.dump({"generator": "scripts/gen_ssl_golden.py", "torch": torch.__version__, "cases": cases}, f, indent=None)
    f.write("\n")
print("wrote %d cases to %s" % (len(cases), os.path.normpath(OUT)))
