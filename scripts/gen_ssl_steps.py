#!/usr/bin/python3
"""Write zoo/ssl/testdata/ssl_steps.json: a few full training iterations of
each method (SimCLR, MoCo v2, MoCo v3, BYOL, SwAV, Barlow Twins, VICReg,
SimSiam, DINO) run by PyTorch, written
after the methods' public reference code, so the Go methods can be checked
step for step: loss of every iteration and every parameter afterwards.

Run with Debian's torch: /usr/bin/python3 scripts/gen_ssl_steps.py
(the Go test TestStepsMatchPyTorch reads the file).

The encoder is a one-layer conv net (Conv2d 3x3 -> BatchNorm2d -> ReLU ->
global average pool) so the file stays small; the heads, target networks,
queues, schedules and update order are the methods' own. Every method uses
SGD (momentum 0.9, weight decay 1e-4) with a linear-warmup cosine learning
rate, whose PyTorch behaviour is not in question, so differences can only
come from the method logic. Everything runs in float64 from float32
initial values.
"""
import json
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(1234)
rng = np.random.default_rng(4321)
torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "zoo", "ssl", "testdata", "ssl_steps.json")

B, FEAT, STEPS = 4, 8, 3
LR, FINAL_LR, WARMUP, TOTAL = 0.5, 0.05, 1, 3
SGD_MOM, WD = 0.9, 1e-4


def lr_at(step):
    if step < WARMUP:
        return LR * step / WARMUP
    if step >= TOTAL:
        return FINAL_LR
    p = (step - WARMUP) / (TOTAL - WARMUP)
    return FINAL_LR + (LR - FINAL_LR) * 0.5 * (1 + math.cos(math.pi * p))


def f32(t):
    return torch.tensor(np.asarray(t, dtype=np.float32), dtype=torch.float64)


def enc(x):
    x = x.detach().numpy()
    return {"shape": list(x.shape), "data": [float("%.10g" % v) for v in x.reshape(-1)]}


def round_params(module):
    # start from float32-representable values, as the Go side loads them
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            if t.is_floating_point():
                t.copy_(f32(t.numpy()))


def encoder():
    return nn.Sequential(nn.Conv2d(3, FEAT, 3, padding=1), nn.BatchNorm2d(FEAT), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())


def mlp(dims, bn):
    layers = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            if bn:
                layers.append(nn.BatchNorm1d(dims[i + 1]))
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def mocov3_mlp(num_layers, input_dim, mlp_dim, output_dim, last_bn=True):
    layers = []
    for l in range(num_layers):
        dim1 = input_dim if l == 0 else mlp_dim
        dim2 = output_dim if l == num_layers - 1 else mlp_dim
        layers.append(nn.Linear(dim1, dim2, bias=False))
        if l < num_layers - 1:
            layers.append(nn.BatchNorm1d(dim2))
            layers.append(nn.ReLU(inplace=True))
        elif last_bn:
            layers.append(nn.BatchNorm1d(dim2, affine=False))
    return nn.Sequential(*layers)


# Views shared by all methods: per step two 8x8 global crops and two 4x4
# local crops (only SwAV uses the local ones).
views = []
for s in range(STEPS):
    base = rng.standard_normal((B, 3, 8, 8)).astype(np.float32)
    vs = [(base + rng.standard_normal(base.shape).astype(np.float32) * 0.3).astype(np.float32) for _ in range(2)]
    vs += [(base[:, :, 2:6, 2:6] + rng.standard_normal((B, 3, 4, 4)).astype(np.float32) * 0.3).astype(np.float32) for _ in range(2)]
    views.append(vs)


def state_of(named):
    out = {}
    for prefix, m in named:
        for k, v in m.state_dict().items():
            if v.is_floating_point():
                out[prefix + "." + k] = enc(v)
    return out


def sgd(params):
    return torch.optim.SGD(params, lr=lr_at(0), momentum=SGD_MOM, weight_decay=WD)


def normalize(x):
    return F.normalize(x, dim=1)


cases = []


def record(name, attrs, init, losses, final):
    cases.append({"name": name, "attrs": attrs, "init": init, "losses": losses, "final": final})


def ema_params(online, target, m):
    with torch.no_grad():
        for po, pt in zip(online.parameters(), target.parameters()):
            pt.data = pt.data * m + po.data * (1.0 - m)


# --- SimCLR: both views through the encoder as one batch.
def run_simclr():
    tau = 0.5
    e, p = encoder(), mlp([FEAT, 16, 8], True)
    for m in (e, p):
        round_params(m)
    init = state_of([("backbone", e), ("projector", p)])
    opt = sgd(list(e.parameters()) + list(p.parameters()))
    losses = []
    for s in range(STEPS):
        for g in opt.param_groups:
            g["lr"] = lr_at(s)
        x = torch.cat([f32(views[s][0]), f32(views[s][1])])
        z = normalize(p(e(x)))
        sim = z @ z.t() / tau
        sim = sim.masked_fill(torch.eye(2 * B, dtype=torch.bool), float("-inf"))
        labels = torch.cat([torch.arange(B) + B, torch.arange(B)])
        loss = F.cross_entropy(sim, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    record("simclr", {"temperature": tau, "hidden": 16, "out": 8}, init, losses,
           state_of([("backbone", e), ("projector", p)]))


# --- MoCo v2, after moco/builder.py (queue [dim, K], momentum update of the
# key encoder before the keys, enqueue after the logits).
def run_mocov2():
    tau, K, mom, dim = 0.2, 6, 0.9, 8
    eq, pq = encoder(), mlp([FEAT, 16, dim], False)
    ek, pk = encoder(), mlp([FEAT, 16, dim], False)
    for m in (eq, pq):
        round_params(m)
    ek.load_state_dict(eq.state_dict())
    pk.load_state_dict(pq.state_dict())
    queue = normalize(torch.randn(dim, K).t()).t().contiguous()
    queue = f32(queue.numpy())
    ptr = 0
    init = state_of([("backbone", eq), ("projector", pq), ("target_backbone", ek), ("target_projector", pk)])
    init["queue"] = enc(queue)
    online, target = nn.ModuleList([eq, pq]), nn.ModuleList([ek, pk])
    opt = sgd(online.parameters())
    losses = []
    for s in range(STEPS):
        for g in opt.param_groups:
            g["lr"] = lr_at(s)
        q = normalize(pq(eq(f32(views[s][0]))))
        with torch.no_grad():
            ema_params(online, target, mom)
            k = normalize(pk(ek(f32(views[s][1]))))
        l_pos = torch.einsum("nc,nc->n", [q, k]).unsqueeze(-1)
        l_neg = torch.einsum("nc,ck->nk", [q, queue.clone().detach()])
        logits = torch.cat([l_pos, l_neg], dim=1) / tau
        loss = F.cross_entropy(logits, torch.zeros(B, dtype=torch.long))
        # enqueue with wrap-around (K is not a multiple of B here)
        for i in range(B):
            queue[:, (ptr + i) % K] = k[i]
        ptr = (ptr + B) % K
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    final = state_of([("backbone", eq), ("projector", pq), ("target_backbone", ek), ("target_projector", pk)])
    final["queue"] = enc(queue)
    record("mocov2", {"temperature": tau, "queue": K, "momentum": mom, "hidden": 16, "out": dim, "queue_ptr": ptr},
           init, losses, final)


# --- MoCo v3, after moco/builder.py (MoCo_ResNet): cosine momentum,
# momentum update before the keys, symmetric loss scaled by 2T.
def run_mocov3():
    tau, base_m, hidden, dim = 1.0, 0.9, 16, 8
    e, proj, pred = encoder(), mocov3_mlp(2, FEAT, hidden, dim), mocov3_mlp(2, dim, hidden, dim, False)
    for m in (e, proj, pred):
        round_params(m)
    ek, projk = encoder(), mocov3_mlp(2, FEAT, hidden, dim)
    ek.load_state_dict(e.state_dict())
    projk.load_state_dict(proj.state_dict())
    named = [("backbone", e), ("projector", proj), ("predictor", pred), ("target_backbone", ek), ("target_projector", projk)]
    init = state_of(named)
    online, target = nn.ModuleList([e, proj]), nn.ModuleList([ek, projk])
    opt = sgd(list(online.parameters()) + list(pred.parameters()))

    def ctr(q, k):
        q, k = normalize(q), normalize(k)
        logits = torch.einsum("nc,mc->nm", [q, k]) / tau
        return F.cross_entropy(logits, torch.arange(B)) * (2 * tau)

    losses = []
    for s in range(STEPS):
        for g in opt.param_groups:
            g["lr"] = lr_at(s)
        m = 1.0 - 0.5 * (1.0 + math.cos(math.pi * s / TOTAL)) * (1.0 - base_m)
        x1, x2 = f32(views[s][0]), f32(views[s][1])
        q1, q2 = pred(proj(e(x1))), pred(proj(e(x2)))
        with torch.no_grad():
            ema_params(online, target, m)
            k1, k2 = projk(ek(x1)), projk(ek(x2))
        loss = ctr(q1, k2) + ctr(q2, k1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    record("mocov3", {"temperature": tau, "momentum": base_m, "hidden": hidden, "out": dim}, init, losses, state_of(named))


# --- BYOL: each view on its own, target update after the optimizer step
# with tau = 1 - (1 - base) * (cos(pi k / K) + 1) / 2.
def run_byol():
    base_tau, hidden, dim = 0.9, 16, 8
    e, proj, pred = encoder(), mlp([FEAT, hidden, dim], True), mlp([dim, hidden, dim], True)
    for m in (e, proj, pred):
        round_params(m)
    ek, projk = encoder(), mlp([FEAT, hidden, dim], True)
    ek.load_state_dict(e.state_dict())
    projk.load_state_dict(proj.state_dict())
    named = [("backbone", e), ("projector", proj), ("predictor", pred), ("target_backbone", ek), ("target_projector", projk)]
    init = state_of(named)
    online, target = nn.ModuleList([e, proj]), nn.ModuleList([ek, projk])
    opt = sgd(list(online.parameters()) + list(pred.parameters()))

    def fn(x, y):
        return 2 - 2 * (normalize(x) * normalize(y)).sum(dim=-1)

    losses = []
    for s in range(STEPS):
        for g in opt.param_groups:
            g["lr"] = lr_at(s)
        x1, x2 = f32(views[s][0]), f32(views[s][1])
        p1, p2 = pred(proj(e(x1))), pred(proj(e(x2)))
        with torch.no_grad():
            t1, t2 = projk(ek(x1)), projk(ek(x2))
        loss = (fn(p1, t2.detach()) + fn(p2, t1.detach())).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        tau = 1 - (1 - base_tau) * (math.cos(math.pi * s / TOTAL) + 1) / 2
        ema_params(online, target, tau)
        losses.append(loss.item())
    record("byol", {"momentum": base_tau, "hidden": hidden, "out": dim}, init, losses, state_of(named))


# --- SwAV, after main_swav.py: prototypes normalised before each
# iteration, crops of one size through the encoder together, the head over
# all crops, codes from the global crops (with the queue once full),
# prototype gradients dropped while frozen.
def run_swav():
    temp, eps, iters, nproto, dim, hidden, freeze, qlen = 0.1, 0.05, 3, 5, 8, 16, 2, 2 * B
    e, proj = encoder(), mlp([FEAT, hidden, dim], True)
    protos = nn.Linear(dim, nproto, bias=False)
    for m in (e, proj, protos):
        round_params(m)
    named = [("backbone", e), ("projector", proj), ("prototypes", protos)]
    init = state_of(named)
    params = list(e.parameters()) + list(proj.parameters()) + list(protos.parameters())
    opt = sgd(params)
    queue = torch.zeros(2, qlen, dim)
    use_queue = False

    def sinkhorn(out):
        Q = torch.exp(out / eps).t()
        Bq, Kq = Q.shape[1], Q.shape[0]
        Q /= torch.sum(Q)
        for _ in range(iters):
            Q /= torch.sum(Q, dim=1, keepdim=True)
            Q /= Kq
            Q /= torch.sum(Q, dim=0, keepdim=True)
            Q /= Bq
        Q *= Bq
        return Q.t()

    losses = []
    for s in range(STEPS):
        for g in opt.param_groups:
            g["lr"] = lr_at(s)
        with torch.no_grad():
            protos.weight.copy_(normalize(protos.weight.data.clone()))
        crops = [f32(v) for v in views[s]]
        feats = torch.cat([e(torch.cat(crops[0:2])), e(torch.cat(crops[2:4]))])
        embedding = normalize(proj(feats))
        output = protos(embedding)
        loss = 0
        for i, crop_id in enumerate([0, 1]):
            with torch.no_grad():
                out = output[B * crop_id: B * (crop_id + 1)].detach()
                if use_queue or not torch.all(queue[i, -1, :] == 0):
                    use_queue = True
                    out = torch.cat((torch.mm(queue[i], protos.weight.t()), out))
                queue[i, B:] = queue[i, :-B].clone()
                queue[i, :B] = embedding[crop_id * B:(crop_id + 1) * B]
                q = sinkhorn(out)[-B:]
            subloss = 0
            for v in np.delete(np.arange(4), crop_id):
                x = output[B * v: B * (v + 1)] / temp
                subloss -= torch.mean(torch.sum(q * F.log_softmax(x, dim=1), dim=1))
            loss += subloss / 3
        loss /= 2
        opt.zero_grad()
        loss.backward()
        if s < freeze:
            for name, p in protos.named_parameters():
                p.grad = None
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        protos.weight.copy_(normalize(protos.weight.data.clone()))
    final = state_of(named)
    final["queue"] = enc(queue)
    record("swav", {"temperature": temp, "epsilon": eps, "iterations": iters, "prototypes": nproto, "hidden": hidden,
                    "out": dim, "freeze": freeze, "queue": qlen}, init, losses, final)


# --- Barlow Twins, VICReg and SimSiam (after their facebookresearch
# repositories): one network for both views, each view through it on its
# own, no target network. They run after the methods above so that adding
# them left the earlier initialisations, and so those cases, as they were.
def bias_free_mlp(dims, last_bn):
    layers = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1], bias=False))
        if i < len(dims) - 2:
            layers += [nn.BatchNorm1d(dims[i + 1]), nn.ReLU()]
    if last_bn:
        # SimSiam's reference keeps a frozen bias on the last Linear; this
        # affine-free BatchNorm cancels it, so the twin leaves it out.
        layers.append(nn.BatchNorm1d(dims[-1], affine=False))
    return nn.Sequential(*layers)


def run_twin(name, attrs, heads, loss_fn):
    e = encoder()
    for m in [e] + [h for _, h in heads]:
        round_params(m)
    named = [("backbone", e)] + heads
    init = state_of(named)
    opt = sgd([p for _, m in named for p in m.parameters()])
    losses = []
    for s in range(STEPS):
        for g in opt.param_groups:
            g["lr"] = lr_at(s)
        loss = loss_fn(e, *[h for _, h in heads], f32(views[s][0]), f32(views[s][1]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    record(name, attrs, init, losses, state_of(named))


def off_diag(m):
    return m[~torch.eye(m.shape[0], dtype=torch.bool)]


def run_barlow():
    lambd, hidden, dim = 5e-3, 16, 8
    bn = nn.BatchNorm1d(dim, affine=False)

    def loss_fn(e, proj, x1, x2):
        z1, z2 = proj(e(x1)), proj(e(x2))
        c = bn(z1).t() @ bn(z2) / B
        return (torch.diagonal(c) - 1).pow(2).sum() + lambd * off_diag(c).pow(2).sum()

    run_twin("barlow", {"lambda": lambd, "hidden": hidden, "out": dim},
             [("projector", bias_free_mlp([FEAT, hidden, hidden, dim], False))], loss_fn)


def run_vicreg():
    # The paper's 25/25/1 divided by 25: at the shared learning rate of 0.5
    # the paper's weights throw the third loss into the thousands, where
    # float32 cannot follow float64.
    hidden, dim, sim, var, cov = 16, 8, 1.0, 1.0, 0.04

    def loss_fn(e, proj, x1, x2):
        x, y = proj(e(x1)), proj(e(x2))
        inv = F.mse_loss(x, y)
        x, y = x - x.mean(dim=0), y - y.mean(dim=0)
        std_x, std_y = torch.sqrt(x.var(dim=0) + 1e-4), torch.sqrt(y.var(dim=0) + 1e-4)
        std = torch.mean(F.relu(1 - std_x)) / 2 + torch.mean(F.relu(1 - std_y)) / 2
        c = off_diag(x.t() @ x / (B - 1)).pow(2).sum() / dim + off_diag(y.t() @ y / (B - 1)).pow(2).sum() / dim
        return sim * inv + var * std + cov * c

    run_twin("vicreg", {"hidden": hidden, "out": dim, "invariance": sim, "variance": var, "covariance": cov},
             [("projector", bias_free_mlp([FEAT, hidden, hidden, dim], False))], loss_fn)


def run_simsiam():
    hidden, dim, pred_hidden = 16, 8, 4
    cosine = nn.CosineSimilarity(dim=1)
    predictor = nn.Sequential(nn.Linear(dim, pred_hidden, bias=False), nn.BatchNorm1d(pred_hidden), nn.ReLU(),
                              nn.Linear(pred_hidden, dim))

    def loss_fn(e, proj, pred, x1, x2):
        z1, z2 = proj(e(x1)), proj(e(x2))
        p1, p2 = pred(z1), pred(z2)
        return -(cosine(p1, z2.detach()).mean() + cosine(p2, z1.detach()).mean()) * 0.5

    run_twin("simsiam", {"hidden": hidden, "out": dim, "pred_hidden": pred_hidden},
             [("projector", bias_free_mlp([FEAT, hidden, hidden, dim], True)), ("predictor", predictor)], loss_fn)


# --- DINO (after the paper and its facebookresearch repository): student
# and teacher each a backbone plus DINO head (MLP with GELU, L2
# normalisation, weight-normalised last layer with g fixed at 1); the
# teacher takes the two global crops as one batch, the student encodes the
# global and the local crops in one batch per size and runs its head over
# all of them. Per step: loss against the centred, sharpened teacher
# (teacher temperature warming up linearly), centre update, backward,
# per-parameter gradient clipping, the last layer's gradients dropped while
# frozen, SGD whose weight decay follows a cosine and spares biases and 1-D
# parameters, then the teacher's EMA. It runs last so that adding it left
# the earlier cases as they were.
class DINOHead(nn.Module):
    def __init__(self, in_dim, hidden, bottleneck, k):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, bottleneck))
        self.last_layer = nn.utils.weight_norm(nn.Linear(bottleneck, k, bias=False))
        self.last_layer.weight_g.data.fill_(1)
        self.last_layer.weight_g.requires_grad = False

    def forward(self, x):
        return self.last_layer(F.normalize(self.mlp(x), dim=-1))


def run_dino():
    hidden, bottleneck, k = 16, 8, 10
    s_temp, t_warm, t_temp, t_warm_steps = 0.1, 0.04, 0.07, 2
    center_m, base_m, freeze, clip, final_wd = 0.9, 0.9, 1, 0.5, 1e-3
    e, head = encoder(), DINOHead(FEAT, hidden, bottleneck, k)
    for m in (e, head):
        round_params(m)
    te, th = encoder(), DINOHead(FEAT, hidden, bottleneck, k)
    te.load_state_dict(e.state_dict())
    th.load_state_dict(head.state_dict())
    center = torch.zeros(1, k)
    named = [("backbone", e), ("head", head), ("target_backbone", te), ("target_head", th)]
    init = state_of(named)
    init["center"] = enc(center.reshape(-1))
    student, teacher = nn.ModuleList([e, head]), nn.ModuleList([te, th])
    trained = [(n, p) for n, p in student.named_parameters() if p.requires_grad]
    decayed = [p for n, p in trained if not n.endswith(".bias") and p.ndim > 1]
    spared = [p for n, p in trained if n.endswith(".bias") or p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decayed}, {"params": spared, "weight_decay": 0.0}], lr=lr_at(0), momentum=SGD_MOM)

    def wd_at(step):
        return final_wd + (WD - final_wd) * 0.5 * (1 + math.cos(math.pi * step / TOTAL))

    losses, clipped = [], 0
    for s in range(STEPS):
        for g in opt.param_groups:
            g["lr"] = lr_at(s)
        opt.param_groups[0]["weight_decay"] = wd_at(s)
        temp = t_warm + (t_temp - t_warm) * s / t_warm_steps if s < t_warm_steps else t_temp
        crops = [f32(v) for v in views[s]]
        with torch.no_grad():
            t_out = th(te(torch.cat(crops[:2])))
        s_out = head(torch.cat([e(torch.cat(crops[:2])), e(torch.cat(crops[2:]))]))
        logp = F.log_softmax(s_out / s_temp, dim=1)
        q = torch.softmax((t_out - center) / temp, dim=1)
        terms = []
        for gi in range(2):
            for v in range(4):
                if v != gi:
                    terms.append(-(q[gi * B:(gi + 1) * B] * logp[v * B:(v + 1) * B]).sum(dim=1).mean())
        loss = torch.stack(terms).mean()
        center = center * center_m + t_out.mean(dim=0, keepdim=True) * (1 - center_m)
        opt.zero_grad()
        loss.backward()
        for n, p in trained:
            if p.grad is not None:
                coef = clip / (p.grad.norm() + 1e-6)
                if coef < 1:
                    p.grad.mul_(coef)
                    clipped += 1
        if s < freeze:
            head.last_layer.weight_v.grad = None
        opt.step()
        ema_params(student, teacher, 1 - (1 - base_m) * (math.cos(math.pi * s / TOTAL) + 1) / 2)
        losses.append(loss.item())
    assert clipped > 0, "the clip never bites; lower it"
    final = state_of(named)
    final["center"] = enc(center.reshape(-1))
    record("dino", {"hidden": hidden, "bottleneck": bottleneck, "prototypes": k, "student_temperature": s_temp,
                    "warmup_teacher_temperature": t_warm, "teacher_temperature": t_temp, "teacher_warmup": t_warm_steps,
                    "center_momentum": center_m, "momentum": base_m, "freeze": freeze, "clip": clip,
                    "final_weight_decay": final_wd}, init, losses, final)


run_simclr()
run_mocov2()
run_mocov3()
run_byol()
run_swav()
run_barlow()
run_vicreg()
run_simsiam()
run_dino()

doc = {"generator": "scripts/gen_ssl_steps.py", "torch": torch.__version__,
       "optim": {"lr": LR, "final_lr": FINAL_LR, "warmup": WARMUP, "total": TOTAL, "momentum": SGD_MOM, "weight_decay": WD},
       "batch": B, "feat": FEAT, "steps": STEPS, "views": [[enc(f32(v)) for v in vs] for vs in views], "cases": cases}
os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as f:
    json.dump(doc, f)
    f.write("\n")
print("wrote %d methods to %s" % (len(cases), os.path.normpath(OUT)))
