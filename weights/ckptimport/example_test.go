package ckptimport_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/sslzoo/sslzoo/weights"
	"github.com/sslzoo/sslzoo/weights/ckptimport"
	"github.com/sslzoo/sslzoo/zoo"
)

// Import a MoCo v3 checkpoint, write the backbone, and rebuild it from the
// file alone.
func Example() {
	res, err := ckptimport.Import("testdata/moco_v3_vit.pth.tar", "moco-v3", "")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Spec.Name, res.EmbeddingDim, len(res.State), "tensors from", res.From)
	fmt.Println("dropped:", res.Dropped)

	dir, _ := os.MkdirTemp("", "import")
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "mocov3.safetensors")
	if err := ckptimport.Write(res, out); err != nil {
		log.Fatal(err)
	}
	f, err := weights.Read(out)
	if err != nil {
		log.Fatal(err)
	}
	spec, _, err := zoo.SpecFromMetadata(f.Metadata)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(spec.ViT.Heads, "heads,", f.Metadata[ckptimport.MetaMethod])
	// Output:
	// vit-d24-l2-h12-p8-s32 24 30 tensors from checkpoint["state_dict"], prefix "module.base_encoder."
	// dropped: [module.base_encoder.head.* (16 tensors) module.momentum_encoder.* (46 tensors) module.predictor.* (10 tensors) checkpoint["epoch"] checkpoint["arch"] checkpoint["optimizer"] checkpoint["scaler"]]
	// 12 heads, mocov3
}
