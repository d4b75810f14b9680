package text

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLoadDirAndSaveDir(t *testing.T) {
	dir := t.TempDir()
	raw, _ := os.ReadFile("testdata/vocab_small.txt")
	os.WriteFile(filepath.Join(dir, "vocab.txt"), raw, 0o644)

	// No config: bert-base-uncased defaults.
	tok, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c := tok.Config(); !c.Basic.Lowercase || !c.Basic.StripAccents || !c.Basic.SplitCJK || c.MaxLen != 512 {
		t.Errorf("defaults %+v", c)
	}

	// A cased config in the layout transformers writes (AddedToken objects,
	// the huge "no limit" max length, strip_accents null).
	conf := `{"do_lower_case": false, "strip_accents": null, "model_max_length": 1000000000000000019884624838656,
	  "mask_token": {"__type": "AddedToken", "content": "[MASK]", "lstrip": true}, "cls_token": "[CLS]"}`
	os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(conf), 0o644)
	tok, err = LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c := tok.Config(); c.Basic.Lowercase || c.Basic.StripAccents || c.MaxLen != 512 {
		t.Errorf("cased config %+v", c)
	}
	got, _ := tok.Tokenize("Hello hello")
	if want := []string{"[UNK]", "hello"}; !reflect.DeepEqual(got, want) {
		t.Errorf("cased tokens %q", got)
	}

	os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(`{"mask_token": "<mask>"}`), 0o644)
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "<mask>") {
		t.Errorf("non-standard special token: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(`{`), 0o644)
	if _, err := LoadDir(dir); err == nil {
		t.Error("broken JSON accepted")
	}

	// Save and load back.
	cfg := DefaultConfig()
	cfg.MaxLen = 128
	cfg.Basic.StripAccents = false
	v, _ := LoadVocab("testdata/vocab_small.txt")
	orig, _ := New(v, cfg)
	out := filepath.Join(t.TempDir(), "tok")
	if err := orig.SaveDir(out); err != nil {
		t.Fatal(err)
	}
	back, err := LoadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	if back.Config() != orig.Config() || back.Vocab().SHA256() != v.SHA256() {
		t.Errorf("round trip: %+v vs %+v", back.Config(), orig.Config())
	}
	var meta map[string]any
	if err := json.Unmarshal([]byte(back.Metadata()), &meta); err != nil {
		t.Fatal(err)
	}
	if meta["vocab_sha256"] != v.SHA256() || meta["max_len"] != 128.0 || meta["strip_accents"] != false {
		t.Errorf("metadata %v", meta)
	}
}
