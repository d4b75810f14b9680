package tensor

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// TestDNNLHeaderABI checks the oneDNN binding's hand-written declarations
// (dnnl_cgo.go) against the real headers: enum values, the exec-arg and
// version structs, and that our descriptor blobs are at least as large and
// as aligned as the structs they stand in for. It compiles a small C
// program with the system compiler, so it runs wherever libdnnl-dev is
// installed (CI) and skips elsewhere.
func TestDNNLHeaderABI(t *testing.T) {
	if len(dnnlEnums) == 0 {
		t.Skip("built without cgo: no oneDNN binding to check")
	}
	if _, err := os.Stat("/usr/include/dnnl.h"); err != nil {
		t.Skip("oneDNN headers not installed (apt-get install libdnnl-dev)")
	}
	cc, err := exec.LookPath("gcc")
	if err != nil {
		if cc, err = exec.LookPath("cc"); err != nil {
			t.Skip("no C compiler")
		}
	}
	names := make([]string, 0, len(dnnlEnums))
	for k := range dnnlEnums {
		names = append(names, k)
	}
	sort.Strings(names)
	facts := []string{
		"sizeof(dnnl_memory_desc_t)", "_Alignof(dnnl_memory_desc_t)",
		"sizeof(dnnl_convolution_desc_t)", "_Alignof(dnnl_convolution_desc_t)",
		"offsetof(dnnl_memory_desc_t, ndims)", "offsetof(dnnl_memory_desc_t, dims)",
		"sizeof(dnnl_dim_t)", "sizeof(dnnl_format_tag_t)", "sizeof(dnnl_query_t)",
		"DNNL_VERSION_MAJOR",
	}
	var src strings.Builder
	src.WriteString("#include <stdio.h>\n#include <stddef.h>\n#include <dnnl.h>\nint main(void) {\n")
	for _, e := range append(names, facts...) {
		fmt.Fprintf(&src, "\tprintf(\"%%s\\t%%lld\\n\", %q, (long long)(%s));\n", e, e)
	}
	src.WriteString("\treturn 0;\n}\n")
	dir := t.TempDir()
	cfile, bin := filepath.Join(dir, "abi.c"), filepath.Join(dir, "abi")
	if err := os.WriteFile(cfile, []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cc, "-o", bin, cfile).CombinedOutput(); err != nil {
		t.Fatalf("compiling the ABI probe: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("running the ABI probe: %v", err)
	}
	real := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, "\t")
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("probe line %q: %v", line, err)
		}
		real[k] = n
	}
	for _, k := range names {
		if real[k] != dnnlEnums[k] {
			t.Errorf("%s: header says %d, binding uses %d", k, real[k], dnnlEnums[k])
		}
	}
	checks := []struct {
		what string
		ok   bool
	}{
		{"major version 2", real["DNNL_VERSION_MAJOR"] == 2},
		{"memory desc fits the blob", real["sizeof(dnnl_memory_desc_t)"] <= dnnlMDBytes},
		{"conv desc fits the blob", real["sizeof(dnnl_convolution_desc_t)"] <= dnnlOpDescBytes},
		{"descs need at most 8-byte alignment", real["_Alignof(dnnl_memory_desc_t)"] <= 8 && real["_Alignof(dnnl_convolution_desc_t)"] <= 8},
		{"ndims then dims at the start of a memory desc", real["offsetof(dnnl_memory_desc_t, ndims)"] == 0 && real["offsetof(dnnl_memory_desc_t, dims)"] == 8},
		{"64-bit dims", real["sizeof(dnnl_dim_t)"] == 8},
		{"enums passed as int", real["sizeof(dnnl_format_tag_t)"] == 4 && real["sizeof(dnnl_query_t)"] == 4},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: not so in this header (%v)", c.what, real)
		}
	}
	t.Logf("memory desc %d bytes (blob %d), conv desc %d bytes (blob %d)",
		real["sizeof(dnnl_memory_desc_t)"], dnnlMDBytes, real["sizeof(dnnl_convolution_desc_t)"], dnnlOpDescBytes)
}
