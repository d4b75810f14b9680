#!/usr/bin/env node
// Runs an ONNX model's first input/output through onnxruntime-node: the
// "another stack" check for sslzoo's exports.
//
//   NODE_PATH=<sslzoo cache>/onnxruntime/1.30.0/node/node_modules \
//     node scripts/ort-node-run.js MODEL.onnx IN.f32 D0,D1,... OUT.f32
//
// IN.f32 holds the input as raw little-endian float32 with the given dims;
// the first output is written to OUT.f32 the same way, and one JSON line on
// stdout gives its name and dims. Install the package with
// scripts/install-onnxruntime.sh --node.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const [model, inPath, dimsArg, outPath] = process.argv.slice(2);
  if (!outPath) {
    throw new Error('usage: ort-node-run.js MODEL.onnx IN.f32 D0,D1,... OUT.f32');
  }
  const dims = dimsArg.split(',').map(Number);
  const buf = fs.readFileSync(inPath);
  const data = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', data, dims) };
  const results = await session.run(feeds);
  const name = session.outputNames[0];
  const out = results[name];
  fs.writeFileSync(outPath, Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength));
  console.log(JSON.stringify({ name, dims: out.dims }));
}

main().catch((e) => {
  console.error(String(e && e.message ? e.message : e).split('\n')[0]);
  process.exit(1);
});
