package ckptimport

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sslzoo/sslzoo/data/text"

	"github.com/sslzoo/sslzoo/weights"
	"github.com/sslzoo/sslzoo/zoo"
)

// importBERT reads a Hugging Face BERT: a model folder, or its
// pytorch_model.bin / model.safetensors with config.json beside it (the
// files save_pretrained writes). The encoder is kept; the pooler and the
// pretraining heads (cls.predictions, cls.seq_relationship) are dropped,
// the embedding being the [CLS] hidden state. Names are mapped as
// zoo.LoadHFBERT maps them (zoo/hfimport.go).
func importBERT(path string, o Options) (*Result, error) {
	if o.Heads != 0 {
		return nil, errors.New("--heads is for ViTs; a BERT's heads come from its config.json or --arch")
	}
	file, cfgPath, err := bertFiles(path)
	if err != nil {
		return nil, err
	}
	in, err := openInput(file)
	if err != nil {
		return nil, err
	}
	defer in.close()
	sd, ok := asStateDict(in.root)
	if !ok {
		return nil, layoutError(in, "hf-bert", "it is not a plain state_dict (save_pretrained writes one)")
	}
	all := map[string]*weights.Tensor{}
	for _, n := range sd.names {
		t, err := sd.refs[n].read()
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %s: %w", file, n, err)
		}
		all[n] = t
	}
	mapped, ignored, _, mlm, err := zoo.HFBERTState(all)
	if err != nil {
		return nil, layoutError(in, "hf-bert", err.Error())
	}
	enc := map[string]ref{}
	dropped := append([]string{}, ignored...)
	for k, v := range mapped {
		name := k
		if mlm {
			rest, ok := strings.CutPrefix(k, "bert.")
			if !ok { // cls.predictions.*
				dropped = append(dropped, k)
				continue
			}
			name = rest
		}
		if strings.HasPrefix(name, "pooler.") {
			dropped = append(dropped, k)
			continue
		}
		enc[name] = ref{shape: v.Shape, st: v}
	}

	spec, err := bertSpec(file, cfgPath, o.Arch)
	if err != nil {
		return nil, err
	}
	res, err := assemble(file, spec, enc, o.Arch)
	if err != nil {
		return nil, err
	}
	// Group what was left out under the checkpoint's own prefixes.
	all2 := &stateDict{refs: map[string]ref{}}
	used := map[string]bool{}
	for n := range enc {
		if mlm {
			n = "bert." + n
		}
		used[n] = true
		all2.names = append(all2.names, n)
		all2.refs[n] = ref{}
	}
	for _, n := range dropped {
		all2.names = append(all2.names, n)
		all2.refs[n] = ref{}
	}
	sort.Strings(all2.names)
	res.Dropped = droppedGroups(all2, used)
	res.From, res.Container = "checkpoint", in.container
	if mlm {
		res.From = `checkpoint, prefix "bert."`
	}
	if err := res.finish(file, "hf-bert", "mlm"); err != nil {
		return nil, err
	}
	if err := recordTokenizer(res, filepath.Dir(file)); err != nil {
		return nil, err
	}
	return res, nil
}

// recordTokenizer stores the tokenizer folder's vocabulary and settings in
// the result's metadata when the folder has a vocab.txt, so that the
// imported file embeds text on its own.
func recordTokenizer(res *Result, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "vocab.txt")); err != nil {
		res.Notes = append(res.Notes, "no vocab.txt beside the weights: the result records no tokenizer (give --vocab when embedding text)")
		return nil
	}
	tok, err := text.LoadDir(dir)
	if err != nil {
		return err
	}
	if n, want := tok.Vocab().Size(), res.Spec.BERT.VocabSize; n != want {
		return fmt.Errorf("%s: vocab.txt has %d tokens but the model's vocabulary has %d", dir, n, want)
	}
	for k, v := range tok.MetadataEntries() {
		res.Meta[k] = v
	}
	return nil
}

// bertFiles finds the weights file and its config.json.
func bertFiles(path string) (file, cfg string, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", "", err
	}
	if !fi.IsDir() {
		return path, filepath.Join(filepath.Dir(path), "config.json"), nil
	}
	for _, n := range []string{"model.safetensors", "pytorch_model.bin"} {
		if _, err := os.Stat(filepath.Join(path, n)); err == nil {
			return filepath.Join(path, n), filepath.Join(path, "config.json"), nil
		}
	}
	return "", "", fmt.Errorf("%s holds neither model.safetensors nor pytorch_model.bin", path)
}

// bertSpec takes the configuration from config.json, or from --arch; with
// both, they must agree. Attention heads are not in a BERT's weights, so
// one of the two is needed.
func bertSpec(file, cfgPath, arch string) (zoo.Spec, error) {
	var fromCfg *zoo.Spec
	raw, err := os.ReadFile(cfgPath)
	switch {
	case err == nil:
		var hc zoo.HFBERTConfig
		if err := json.Unmarshal(raw, &hc); err != nil {
			return zoo.Spec{}, fmt.Errorf("%s: %w", cfgPath, err)
		}
		c, err := hc.BERTConfig()
		if err != nil {
			return zoo.Spec{}, fmt.Errorf("%s: %w", cfgPath, err)
		}
		fromCfg = &zoo.Spec{Family: "bert", BERT: c}
		fromCfg.Name = specName(*fromCfg)
	case !errors.Is(err, os.ErrNotExist):
		return zoo.Spec{}, err
	}
	if arch == "" {
		if fromCfg == nil {
			return zoo.Spec{}, fmt.Errorf("no config.json beside %s: a BERT's attention heads are not in its weights, so pass --arch (%s) or put the model's config.json there", file, strings.Join(bertArchs(), ", "))
		}
		return *fromCfg, nil
	}
	spec, err := zoo.Arch(arch)
	if err != nil {
		return spec, err
	}
	if spec.Family != "bert" {
		return spec, fmt.Errorf("--arch %s is a %s, not a BERT", arch, spec.Family)
	}
	if fromCfg != nil {
		a, b := spec, *fromCfg
		a.Name, b.Name = "", ""
		if a.ConfigJSON() != b.ConfigJSON() {
			return spec, fmt.Errorf("%s describes %s (%s), not --arch %s (%s); leave out --arch", cfgPath, fromCfg.Name, describeSpec(*fromCfg), arch, describeSpec(spec))
		}
	}
	return spec, nil
}

func bertArchs() []string {
	var out []string
	for _, n := range zoo.ArchNames() {
		if s, err := zoo.Arch(n); err == nil && s.Family == "bert" {
			out = append(out, n)
		}
	}
	return out
}
