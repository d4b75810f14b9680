// Package text is the text side of sslzoo's data pipeline: a WordPiece
// tokenizer compatible with BERT's (and with Hugging Face vocab.txt files), a
// deterministic WordPiece vocabulary trainer, BERT-style masked-language-model
// masking, corpus loaders (plain-text files and folders, the Brown Corpus,
// Newton's Opticks from GOROOT) and sentence packing into fixed-length
// training sequences.
//
// Invalid UTF-8 is replaced, not rejected, unless a caller asks for strict
// checking: Go decodes each invalid byte as U+FFFD, and BERT's text cleanup
// drops U+FFFD, so invalid bytes vanish from the token stream exactly as they
// do when Python decodes the bytes with errors="replace" before tokenizing.
// Config.StrictUTF8 and LoadOptions.StrictUTF8 turn this into an
// ErrInvalidUTF8 error that names the byte offset.
package text
