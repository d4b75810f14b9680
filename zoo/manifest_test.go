package zoo

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/nn"
)

// Every entry's recorded size matches the backbone it names: the number of
// parameters and the embedding width come from building it, not from the
// authors' papers.
func TestManifestEntriesBuild(t *testing.T) {
	all, err := Entries()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 {
		t.Fatal("manifest is empty")
	}
	built := map[string]Backbone{} // building vit-base takes seconds
	for _, e := range all {
		spec, err := Arch(e.Arch)
		if err != nil {
			t.Fatal(err)
		}
		if len(e.ArchConfig) > 0 {
			if spec, err = ParseSpec(string(e.ArchConfig)); err != nil {
				t.Fatalf("%s: %v", e.Name, err)
			}
		}
		key := spec.ConfigJSON()
		b, ok := built[key]
		if !ok {
			if b, err = spec.Build(rand.New(rand.NewPCG(1, 2))); err != nil {
				t.Fatalf("%s: %v", e.Name, err)
			}
			built[key] = b
		}
		var params int64
		for _, p := range nn.StateOf(b).Params {
			params += int64(len(p.Var.Value.Data))
		}
		if params != e.Params {
			t.Errorf("%s: params %d in the manifest, the %s backbone has %d", e.Name, e.Params, e.Arch, params)
		}
		if b.FeatureDim() != e.EmbeddingDim {
			t.Errorf("%s: embedding_dim %d in the manifest, the backbone gives %d", e.Name, e.EmbeddingDim, b.FeatureDim())
		}
		if e.Modality == "image" && e.Preprocess == nil {
			t.Errorf("%s: image entry without preprocess", e.Name)
		}
		if e.Bundled && (e.Size <= 0 || !e.Verified) {
			t.Errorf("%s: bundled entries must be verified and sized", e.Name)
		}
	}
}

// manifestReject is a bad manifest and what its error must say.
type manifestReject struct{ name, json, want string }

// manifestRejects are TestManifestRejects' cases, also FuzzParseManifest's
// seeds.
func manifestRejects() []manifestReject {
	return []manifestReject{
		{"version", `{"version":2,"entries":[]}`, "version 2"},
		{"unknown field", `{"version":1,"entries":[{"name":"a","bogus":1}]}`, "bogus"},
		{"path name", `{"version":1,"entries":[{"name":"../x","file":"f","modality":"image","arch":"resnet18"}]}`, "not a safe"},
		{"path file", `{"version":1,"entries":[{"name":"x","file":"../f","modality":"image","arch":"resnet18"}]}`, "not a plain file"},
		{"absolute name", `{"version":1,"entries":[{"name":"/etc","file":"f","modality":"image","arch":"resnet18"}]}`, "not a safe"},
		{"absolute file", `{"version":1,"entries":[{"name":"x","file":"/etc/passwd","modality":"image","arch":"resnet18"}]}`, "not a plain file"},
		{"nested file", `{"version":1,"entries":[{"name":"x","file":"a/../../f","modality":"image","arch":"resnet18"}]}`, "not a plain file"},
		{"dot file", `{"version":1,"entries":[{"name":"x","file":"..","modality":"image","arch":"resnet18"}]}`, "not a plain file"},
		{"bad sha", `{"version":1,"entries":[{"name":"x","file":"f","modality":"image","arch":"resnet18","sha256":"zz"}]}`, "64 hex"},
		{"arch", `{"version":1,"entries":[{"name":"x","file":"f","modality":"image","arch":"resnet7"}]}`, "resnet7"},
		{"twice", `{"version":1,"entries":[{"name":"x","file":"f","modality":"text","arch":"bert-tiny"},{"name":"x","file":"f","modality":"text","arch":"bert-tiny"}]}`, "twice"},
		{"trailing", `{"version":1,"entries":[]} {}`, "trailing content"},
		{"kelvin file", `{"version":1,"entries":[{"name":"x","file":"\u212aey.pth","modality":"image","arch":"resnet18"}]}`, "not a plain file"},
		{"negative size", `{"version":1,"entries":[{"name":"x","file":"f","modality":"image","arch":"resnet18","size":-1}]}`, "negative"},
		{"bad arch_config", `{"version":1,"entries":[{"name":"x","file":"f","modality":"image","arch":"resnet18","arch_config":{"family":"resnet","resnet":{"Depth":7}}}]}`, "depth 7"},
	}
}

func TestManifestRejects(t *testing.T) {
	for _, tc := range manifestRejects() {
		_, err := parseManifest([]byte(tc.json))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestLookupSuggests(t *testing.T) {
	if _, err := Lookup("dino-vit-smal16"); err == nil || !strings.Contains(err.Error(), "did you mean dino-vit-small16") {
		t.Fatalf("Lookup typo: %v", err)
	}
	if _, err := Lookup("zzzzzzzzzzzzzz"); err == nil || strings.Contains(err.Error(), "did you mean") {
		t.Fatalf("Lookup far name: %v", err)
	}
	e, err := Lookup("mae-vit-base")
	if err != nil || e.Arch != "vit-base" {
		t.Fatalf("Lookup(mae-vit-base) = %+v, %v", e, err)
	}
}
