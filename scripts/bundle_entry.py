#!/usr/bin/env python3
"""Bundle a finished `sslzoo train` run as a zoo entry.

Copies RUN/final.safetensors to zoo/bundled/files/NAME/NAME.safetensors,
measures it with `sslzoo eval knn --checkpoint FILE` (the README's protocol:
weighted kNN, k 200, T 0.1, the full 60k training bank, the 10k test split),
and writes or replaces the entry in zoo/manifest.json with its size, sha256,
recipe (the exact command, seed, steps, wall time summed from
RUN/metrics.jsonl) and metric.

usage: scripts/bundle_entry.py --name simclr-resnet18-fmnist --run DIR \
           --command "sslzoo train simclr ..." [--machine "2 cores ..."] [--fp16]

A text run (`sslzoo train mlm`, whose --out is a Hugging Face BERT folder)
is imported into one file that carries its vocabulary (`sslzoo import
--format hf-bert`), measured with `sslzoo eval genres --model FILE` (Brown
genres, leave-one-out kNN), and its steps and training time are read from
the train log: add --log FILE.
Any python3 works (standard library only); run it from the repository root
after `make build`.
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def safetensors_metadata(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > 100 << 20:
            sys.exit(f"{path}: header of {n} bytes is not a safetensors header")
        header = json.loads(f.read(n))
    return header.get("__metadata__", {})


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def arch_config(meta):
    """The exact backbone: the file's sslzoo.arch_config, or one derived
    from the sslzoo.train run spec of files written before that key."""
    if "sslzoo.arch_config" in meta:
        return json.loads(meta["sslzoo.arch_config"])
    spec = json.loads(meta["sslzoo.train"])
    arch = spec["arch"]
    if arch.startswith("resnet"):
        depth = int(arch[len("resnet"):].split("-")[0])
        return {"name": arch, "family": "resnet", "resnet": {
            "Depth": depth, "Stem": "cifar" if arch.endswith("-cifar") else "imagenet", "Width": spec["width"],
            "InChannels": spec["in_channels"], "NumClasses": 0, "ZeroInitResidual": False}}
    sys.exit(f"{arch}: no sslzoo.arch_config in the file; re-save it with a current sslzoo")


def write_fp16(src, dest):
    """Copies a safetensors file with every F32 tensor stored as F16 (the
    loaders widen F16 back to float32); other dtypes are kept as they are.
    Writes DEST.tmp, then renames it."""
    with open(src, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > 100 << 20:
            sys.exit(f"{src}: header of {n} bytes is not a safetensors header")
        header = json.loads(f.read(n))
        body = f.read()
    out_header, chunks, offset = {}, [], 0
    for name in sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0]):
        t = dict(header[name])
        lo, hi = t["data_offsets"]
        raw = body[lo:hi]
        if t["dtype"] == "F32":
            count = len(raw) // 4
            raw = struct.pack(f"<{count}e", *struct.unpack(f"<{count}f", raw))
            t["dtype"] = "F16"
        t["data_offsets"] = [offset, offset + len(raw)]
        offset += len(raw)
        out_header[name] = t
        chunks.append(raw)
    if "__metadata__" in header:
        out_header["__metadata__"] = header["__metadata__"]
    enc = json.dumps(out_header, separators=(",", ":")).encode()
    enc += b" " * (-len(enc) % 8)
    tmp = dest + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(enc)))
        f.write(enc)
        for c in chunks:
            f.write(c)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, dest)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True)
    ap.add_argument("--run", required=True, help="the train --out folder")
    ap.add_argument("--command", required=True, help="the exact sslzoo train command line")
    ap.add_argument("--machine", default="2 cores (AMD EPYC, AVX-512), Debian 12, Go 1.26")
    ap.add_argument("--bin", default=os.path.join(ROOT, "bin", "sslzoo"))
    ap.add_argument("--version", default="1")
    ap.add_argument("--license", default="Apache-2.0")
    ap.add_argument("--log", help="the train log of a text run (its steps and training seconds)")
    ap.add_argument("--fp16", action="store_true",
                    help="store float32 weights as float16 (half the size; the metric is measured on the fp16 file)")
    args = ap.parse_args()
    if os.path.exists(os.path.join(args.run, "config.json")):
        return bundle_text(args)

    src = os.path.join(args.run, "final.safetensors")
    meta = safetensors_metadata(src)
    spec = json.loads(meta["sslzoo.train"])
    dest_dir = os.path.join(ROOT, "zoo", "bundled", "files", args.name)
    os.makedirs(dest_dir, exist_ok=True)
    file = args.name + ".safetensors"
    dest = os.path.join(dest_dir, file)
    if args.fp16:
        write_fp16(src, dest)
    else:
        shutil.copyfile(src, dest)

    steps, wall = 0, 0.0
    with open(os.path.join(args.run, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if r.get("kind") == "epoch":
                wall += r.get("epoch_s", 0)
                steps = max(steps, r["step"])

    data = spec["data"]
    ev = [args.bin, "eval", "knn", "--checkpoint", dest, "--data", data, "--json"]
    print("measuring:", " ".join(ev), file=sys.stderr)
    report = json.loads(subprocess.run(ev, check=True, capture_output=True, text=True).stdout)
    top1 = round(100 * report["top1"], 2)

    cfg = arch_config(meta)
    pre = json.loads(meta["sslzoo.preprocess"])
    if pre.get("channels") == "grey":
        pre["channels"] = "L"
    size = pre["size"][0]
    pre.setdefault("resize_size", size)
    pre["crop"] = "center"
    pre.setdefault("layout", "NCHW")
    params = count_params(dest)

    entry = {
        "name": args.name,
        "version": args.version,
        "method": spec["method"],
        "arch": spec["arch"],
        "modality": "image",
        "arch_config": cfg,
        "embedding_dim": int(meta["sslzoo.embedding_dim"]),
        "params": params,
        "file": file,
        "size": os.path.getsize(dest),
        "sha256": sha256(dest),
        "bundled": True,
        "verified": True,
        "license": args.license,
        "source": "trained by sslzoo on this project's machines",
        "recipe": {"command": args.command, "seed": spec["seed"], "epochs": spec["epochs"], "steps": steps,
                   "wall_time_s": round(wall, 1), "machine": args.machine},
        "preprocess": pre,
        "metrics": [{"dataset": data, "protocol": "knn", "top1": top1,
                     "command": f"sslzoo eval knn --checkpoint {args.name} --data {data}"}],
    }
    write_entry(entry)
    print(f"{args.name}: kNN top-1 {top1}% ({report.get('test_images', '?')} test images), {entry['size']} bytes, sha256 {entry['sha256']}")


def count_params(path):
    """Learned values in a safetensors file (BatchNorm statistics excluded)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    params = 0
    for k, v in header.items():
        if k == "__metadata__" or "running_" in k or k.endswith("num_batches_tracked"):
            continue
        c = 1
        for d in v["shape"]:
            c *= d
        params += c
    return params


def bundle_text(args):
    if not args.log:
        sys.exit("a text run needs --log (the train log, for its steps and training time)")
    dest_dir = os.path.join(ROOT, "zoo", "bundled", "files", args.name)
    os.makedirs(dest_dir, exist_ok=True)
    file = args.name + ".safetensors"
    dest = os.path.join(dest_dir, file)
    subprocess.run([args.bin, "import", "--format", "hf-bert", args.run, "--out", dest], check=True,
                   stdout=subprocess.DEVNULL)
    meta = safetensors_metadata(dest)
    tok = json.loads(meta["sslzoo.tokenizer"])
    with open(args.log) as f:
        log = f.read()
    # The last run of this folder in the log is the one that finished.
    part = log[log.rfind("start " + args.run.rstrip("/")):]
    wall = re.search(r"training: ([0-9.]+) s for", part)
    steps = re.search(r"after (\d+) steps", part)
    if not wall or not steps:
        sys.exit(f"{args.log}: no finished run of {args.run} (want its 'training: ... s' and 'after N steps' lines)")
    ev = [args.bin, "eval", "genres", "--model", dest, "--json"]
    print("measuring:", " ".join(ev), file=sys.stderr)
    report = json.loads(subprocess.run(ev, check=True, capture_output=True, text=True).stdout)
    top1 = round(100 * report["top1"], 2)
    cfg = json.loads(meta["sslzoo.arch_config"])
    cmd = args.command.split()
    epochs = int(cmd[cmd.index("--epochs") + 1]) if "--epochs" in cmd else None
    seed = int(cmd[cmd.index("--seed") + 1]) if "--seed" in cmd else 1
    entry = {
        "name": args.name,
        "version": args.version,
        "method": "mlm",
        "arch": cmd[cmd.index("--arch") + 1] if "--arch" in cmd else cfg["name"],
        "modality": "text",
        "arch_config": cfg,
        "embedding_dim": int(meta["sslzoo.embedding_dim"]),
        "params": count_params(dest),
        "file": file,
        "size": os.path.getsize(dest),
        "sha256": sha256(dest),
        "bundled": True,
        "verified": True,
        "license": args.license,
        "source": "trained by sslzoo on this project's machines",
        "recipe": {"command": args.command, "seed": seed, "epochs": epochs, "steps": int(steps.group(1)),
                   "wall_time_s": round(float(wall.group(1)), 1), "machine": args.machine},
        "tokenizer": {"kind": "wordpiece", "vocab_size": tok["vocab_size"], "vocab_sha256": tok["vocab_sha256"],
                      "lowercase": tok["lowercase"], "max_length": tok["max_len"]},
        "metrics": [{"dataset": report["data"], "protocol": "genres-knn", "top1": top1,
                     "command": f"sslzoo eval genres --model {args.name}"}],
    }
    write_entry(entry)
    print(f"{args.name}: Brown genres kNN top-1 {top1}% ({report['documents']} documents), {entry['size']} bytes, sha256 {entry['sha256']}")


def write_entry(entry):
    mpath = os.path.join(ROOT, "zoo", "manifest.json")
    with open(mpath) as f:
        manifest = json.load(f)
    manifest["entries"] = [e for e in manifest["entries"] if e["name"] != entry["name"]] + [entry]
    manifest["entries"].sort(key=lambda e: (not e.get("bundled", False), e["name"]))
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(mpath))
    with os.fdopen(fd, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    os.replace(tmp, mpath)


if __name__ == "__main__":
    main()
