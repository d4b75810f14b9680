// Generates data/text/testdata/tokenizer_golden.json: tokenizations of fixed
// tricky strings by a WordPiece implementation we did not write, the
// BertTokenizer of @xenova/transformers 2.17.2 (pure JavaScript), built
// offline from our own vocab.txt files. The Go test (data/text) compares its
// tokens, ids, type ids and attention masks exactly.
//
// Usage (scripts/gen_tokenizer_golden.sh installs the package into a temp dir
// and runs this):
//   node scripts/gen_tokenizer_golden.mjs <path to node_modules/@xenova/transformers> [opticks.txt]
//
// Known differences of transformers.js 2.17.2 from BERT's published
// algorithm, which the cases below avoid and the Go tests cover by hand:
//   - accent stripping removes only U+0300..U+036F, BERT removes every Mn;
//   - CJK splitting walks UTF-16 code units, so ideographs above U+FFFF are
//     not split;
//   - truncation cuts the end of the encoding, [SEP] included.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [pkgDir, opticksPath] = process.argv.slice(2);
if (!pkgDir) {
  console.error('usage: node gen_tokenizer_golden.mjs <node_modules/@xenova/transformers> [opticks.txt]');
  process.exit(2);
}
const { BertTokenizer } = await import(pathToFileURL(path.join(pkgDir, 'src', 'tokenizers.js')).href);
const pkgVersion = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).version;

const here = path.dirname(new URL(import.meta.url).pathname);
const testdata = path.join(here, '..', 'data', 'text', 'testdata');

function readVocab(file) {
  // Same rules as the Go reader and Hugging Face: one token per line, id = line.
  const text = fs.readFileSync(path.join(testdata, file), 'utf8');
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

// A tokenizer.json in the layout Hugging Face's fast BERT tokenizers use.
function makeTokenizer(vocabFile, lowercase) {
  const lines = readVocab(vocabFile);
  const vocab = {};
  lines.forEach((t, i) => { vocab[t] = i; });
  const specials = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
  const json = {
    added_tokens: specials.map((t) => ({
      id: vocab[t], content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: {
      type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [vocab['[CLS]']], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [vocab['[SEP]']], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab,
    },
  };
  const config = {
    do_lower_case: lowercase, model_max_length: 512, tokenizer_class: 'BertTokenizer',
    cls_token: '[CLS]', sep_token: '[SEP]', pad_token: '[PAD]', mask_token: '[MASK]', unk_token: '[UNK]',
  };
  return new BertTokenizer(json, config);
}

const tricky = [
  'Hello, World! How are you?',
  'unaffable',
  'Héllo Naïve café résumé',
  'ÀÉÎÕÜ ñ Ç Straße',
  '我爱北京天安门',
  'BERT模型很好',
  'hello世界hello',
  'a'.repeat(100),
  'a'.repeat(101),
  'b'.repeat(99) + 'é',
  'xyzzy xyz abcabc',
  "don't U.S.A. e-mail $100.00 (hello)",
  '“quoted” a—b ¿qué? ¡hola! wait…',
  'hello\u0000world\u0007 tab\there\nnew\r\nline',
  'zero\u200bwidth \ufeffbom soft\u00adhyphen',
  '\u00a0nbsp\u3000ideographic\u2003space',
  'ΟΔΟΣ Σοφία ΣΟΦΙΑΣ. Σ',
  'İstanbul',
  '한국어',
  'the [MASK] sat on [SEP] mat',
  '[mask] lower case literal is not special',
  '[MASK][MASK]x[UNK]',
  'ThE QuIcK BrOwN FoX JumpEd over the LAZY dog',
  '3.14159 and 1,000,000',
  '',
  '   \n\t ',
  'I ❤ 🍕 ok',
  'ＡＢＣ abc',
  'a\u0301b\u0327c',
  'tab\u000bvt\u000cff\u0085nel',
  '<html> {x} [y] |z| ~^_`@#',
];

const pairs = [
  ['How are you?', 'I am fine.'],
  ['', 'only second'],
  ['first', ''],
  ['Héllo [MASK]!', '世界 world'],
];

const batches = [
  ['hello world', 'the quick brown fox jumped over the lazy dog', ''],
];

function encodeAll(tok, vocabFile, name, lowercase, texts) {
  const out = { name, vocab: vocabFile, lowercase, singles: [], pairs: [], batches: [] };
  for (const text of texts) {
    const e = tok._encode_plus(text, null, { add_special_tokens: true, return_token_type_ids: true });
    out.singles.push({
      text, tokens: tok._encode_text(text), input_ids: e.input_ids,
      token_type_ids: e.token_type_ids, attention_mask: e.attention_mask,
    });
  }
  return out;
}

const configs = [];
for (const [name, lowercase] of [['uncased', true], ['cased', false]]) {
  const tok = makeTokenizer('vocab_small.txt', lowercase);
  const c = encodeAll(tok, 'vocab_small.txt', name, lowercase, tricky);
  for (const [a, b] of pairs) {
    const e = tok._encode_plus(a, b, { add_special_tokens: true, return_token_type_ids: true });
    c.pairs.push({ a, b, input_ids: e.input_ids, token_type_ids: e.token_type_ids, attention_mask: e.attention_mask });
  }
  for (const texts of batches) {
    const e = tok(texts, { padding: true, return_tensor: false });
    c.batches.push({ texts, input_ids: e.input_ids, token_type_ids: e.token_type_ids, attention_mask: e.attention_mask });
  }
  configs.push(c);
}

// Real prose with a vocabulary our trainer made: every non-empty line of the
// first part of Newton's Opticks (from GOROOT) through vocab_opticks.txt.
if (opticksPath && fs.existsSync(path.join(testdata, 'vocab_opticks.txt'))) {
  const lines = fs.readFileSync(opticksPath, 'utf8').split('\n').filter((l) => l.trim() !== '').slice(0, 400);
  const tok = makeTokenizer('vocab_opticks.txt', true);
  configs.push(encodeAll(tok, 'vocab_opticks.txt', 'opticks', true, lines));
}

const golden = {
  generator: `scripts/gen_tokenizer_golden.mjs with @xenova/transformers ${pkgVersion} BertTokenizer`,
  configs,
};
const dest = path.join(testdata, 'tokenizer_golden.json');
// One case per line keeps the file small and its diffs readable.
const lines = ['{', `"generator": ${JSON.stringify(golden.generator)},`, '"configs": ['];
golden.configs.forEach((c, ci) => {
  lines.push(`{"name": ${JSON.stringify(c.name)}, "vocab": ${JSON.stringify(c.vocab)}, "lowercase": ${c.lowercase},`);
  for (const key of ['singles', 'pairs', 'batches']) {
    lines.push(`"${key}": [`);
    c[key].forEach((x, i) => lines.push(JSON.stringify(x) + (i + 1 < c[key].length ? ',' : '')));
    lines.push(key === 'batches' ? ']' : '],');
  }
  lines.push(ci + 1 < golden.configs.length ? '},' : '}');
});
lines.push(']', '}');
fs.writeFileSync(dest, lines.join('\n') + '\n');
console.error(`wrote ${dest}: ${configs.map((c) => `${c.name} ${c.singles.length} texts`).join(', ')}`);
