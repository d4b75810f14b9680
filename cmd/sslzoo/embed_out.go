package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"

	"github.com/sslzoo/sslzoo/internal/atomicfile"
	"github.com/sslzoo/sslzoo/internal/npy"
)

// writeEmbeddings writes rows to out, atomically: a .npy matrix, or .jsonl
// records {key: keys[i], "embedding": rows[i]} (key is "file" or "text").
func writeEmbeddings(out, key string, keys []string, rows [][]float32) error {
	if filepath.Ext(out) == ".npy" {
		dim := 0
		if len(rows) > 0 {
			dim = len(rows[0])
		}
		flat := make([]float32, 0, len(rows)*dim)
		for _, r := range rows {
			flat = append(flat, r...)
		}
		return npy.WriteFile(out, &npy.Array{DType: npy.Float32, Shape: []int{len(rows), dim}, Data: flat})
	}
	if len(keys) != len(rows) {
		return fmt.Errorf("%d %ss for %d embeddings", len(keys), key, len(rows))
	}
	return atomicfile.Write(out, func(f io.Writer) error {
		bw := bufio.NewWriter(f)
		for i, r := range rows {
			// The key first, as a reader scanning the file expects.
			k, err := json.Marshal(keys[i])
			if err != nil {
				return err
			}
			v, err := json.Marshal(r)
			if err != nil {
				return err
			}
			fmt.Fprintf(bw, "{%q:%s,\"embedding\":%s}\n", key, k, v)
		}
		return bw.Flush()
	})
}
