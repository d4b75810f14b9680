package ssl

import (
	"encoding/json"
	"os"
	"testing"
)

// readGolden decodes testdata/NAME_golden.json, the fixture that
// scripts/gen_NAME_golden.py writes with PyTorch or NumPy.
func readGolden[T any](t *testing.T, name string) *T {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + name + "_golden.json")
	if err != nil {
		t.Fatalf("read fixture (regenerate with /usr/bin/python3 scripts/gen_%s_golden.py): %v", name, err)
	}
	var g T
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatalf("testdata/%s_golden.json: %v", name, err)
	}
	return &g
}
