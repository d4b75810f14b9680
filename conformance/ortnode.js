#!/usr/bin/env node
// Runs an ONNX model through onnxruntime-node (JavaScript): the "another
// stack" check of sslzoo's conformance suite, which embeds this file.
//
//   NODE_PATH=<sslzoo cache>/onnxruntime/1.30.0/node/node_modules \
//     node ortnode.js MODEL.onnx OUT_DIR IN0.npy [IN1.npy ...]
//
// Inputs are .npy files (float32 '<f4' or int64 '<i8', C order) given in
// the model's input order. Every output is written to OUT_DIR/<index>.npy,
// and one JSON line on stdout lists the outputs' names and dims.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

const MAGIC = '\x93NUMPY';
const TYPES = { '<f4': ['float32', Float32Array], '<i8': ['int64', BigInt64Array] };

function readNpy(file) {
  const b = fs.readFileSync(file);
  if (b.length < 10 || b.toString('latin1', 0, 6) !== MAGIC) {
    throw new Error(`${file}: not a .npy file`);
  }
  const major = b[6];
  const hlen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + hlen;
  const header = b.toString('latin1', major === 1 ? 10 : 12, start);
  const descr = /'descr':\s*'([^']*)'/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !shape || !/'fortran_order':\s*False/.test(header) || !TYPES[descr[1]]) {
    throw new Error(`${file}: unsupported header ${header.trim()}`);
  }
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  const [type, Arr] = TYPES[descr[1]];
  const n = dims.reduce((a, d) => a * d, 1);
  if (b.length - start !== n * Arr.BYTES_PER_ELEMENT) {
    throw new Error(`${file}: ${b.length - start} data bytes for shape [${dims}]`);
  }
  // Copy into an aligned buffer: the data offset need not be a multiple of 8.
  const data = new Arr(n);
  new Uint8Array(data.buffer).set(b.subarray(start));
  return new ort.Tensor(type, data, dims);
}

function writeNpy(file, t) {
  const descr = { float32: '<f4', int64: '<i8' }[t.type];
  if (!descr) {
    throw new Error(`output of type ${t.type} is not supported`);
  }
  const shape = t.dims.length === 1 ? `(${t.dims[0]},)` : `(${t.dims.join(', ')})`;
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  dict = dict.padEnd(total - 10 - 1, ' ') + '\n';
  const head = Buffer.alloc(10);
  head.write(MAGIC, 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(dict.length, 8);
  const body = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(dict, 'latin1'), body]));
}

async function main() {
  const [model, outDir, ...inputs] = process.argv.slice(2);
  if (!model || !outDir || inputs.length === 0) {
    throw new Error('usage: ortnode.js MODEL.onnx OUT_DIR IN0.npy [IN1.npy ...]');
  }
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
  if (inputs.length !== session.inputNames.length) {
    throw new Error(`model takes ${session.inputNames.length} inputs, got ${inputs.length}`);
  }
  const feeds = {};
  session.inputNames.forEach((name, i) => {
    feeds[name] = readNpy(inputs[i]);
  });
  const results = await session.run(feeds);
  const outputs = session.outputNames.map((name, i) => {
    writeNpy(path.join(outDir, `${i}.npy`), results[name]);
    return { name, dims: results[name].dims };
  });
  console.log(JSON.stringify({ outputs }));
}

main().catch((e) => {
  console.error(String(e && e.message ? e.message : e).split('\n')[0]);
  process.exit(1);
});
