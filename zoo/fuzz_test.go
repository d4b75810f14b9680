package zoo

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/internal/fuzzcheck"
)

// jsonPerByte bounds what one byte of JSON may cost a decode into Go
// structs: a 2-byte number ("1,") lands in an 8-byte slot of a slice that
// grows by doubling, and a short string in a 16-byte header plus its bytes.
const jsonPerByte = 64

// FuzzParseSpec: any text gives an error of one line or a spec of a known
// family whose configuration Build's own checks accept, and which
// ConfigJSON renders into text that ParseSpec reads back as the same spec.
// The seeds are ConfigJSON of every registered architecture, the
// manifest's arch_config values and refused specs.
func FuzzParseSpec(f *testing.F) {
	for _, name := range ArchNames() {
		s, err := Arch(name)
		if err != nil {
			f.Fatal(err)
		}
		fuzzcheck.Seed(f, name, s.ConfigJSON())
	}
	for _, e := range mustEntries(f) {
		if len(e.ArchConfig) > 0 {
			fuzzcheck.Seed(f, "manifest_"+e.Name, string(e.ArchConfig))
		}
	}
	fuzzcheck.Seed(f, "broken", `{"family":"vit","vit":`)
	fuzzcheck.Seed(f, "null", `null`)
	fuzzcheck.Seed(f, "no_config", `{"name":"resnet18","family":"resnet"}`)
	fuzzcheck.Seed(f, "unknown_family", `{"name":"x","family":"convnext","resnet":{"Depth":18}}`)
	fuzzcheck.Seed(f, "bad_depth", `{"family":"resnet","resnet":{"Depth":7}}`)
	fuzzcheck.Seed(f, "bad_heads", `{"family":"vit","vit":{"Dim":192,"Depth":12,"Heads":5}}`)
	fuzzcheck.Seed(f, "bad_dropout", `{"family":"bert","bert":{"Hidden":128,"Layers":2,"Heads":2,"HiddenDropout":1}}`)
	f.Fuzz(func(t *testing.T, raw string) {
		fuzzcheck.Bounded(t, fuzzcheck.Limit(len(raw), jsonPerByte), func() {
			s, err := ParseSpec(raw)
			if err != nil {
				zooError(t, err)
				return
			}
			checkSpec(t, s)
		})
	})
}

// checkSpec holds a parsed spec to FuzzParseSpec's contract.
func checkSpec(t *testing.T, s Spec) {
	t.Helper()
	var err error
	switch s.Family {
	case "resnet":
		_, err = s.ResNet.withDefaults()
	case "vit":
		_, err = s.ViT.withDefaults()
	case "bert":
		_, err = s.BERT.withDefaults()
	default:
		t.Fatalf("spec of family %q", s.Family)
	}
	if err != nil {
		t.Fatalf("a parsed %s spec that Build refuses: %v", s.Family, err)
	}
	raw := s.ConfigJSON()
	back, err := ParseSpec(raw)
	if err != nil {
		t.Fatalf("ParseSpec of ConfigJSON %s: %v", raw, err)
	}
	if back != s {
		t.Fatalf("ConfigJSON round trip changed %+v into %+v", s, back)
	}
}

// plainFile is what a manifest's file name must be: one path element.
var plainFile = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]*$`)

var lowerHex = regexp.MustCompile(`^[0-9a-f]*$`)

// FuzzParseManifest: any bytes give an error of one line or entries sorted
// by unique names safe as folder names, files that are plain file names,
// a known modality and architecture, well-formed hashes, a valid
// arch_config and preprocess where given; and the entries, written back
// as a manifest, parse to entries that write the same bytes again. The
// seeds are the compiled-in manifest and TestManifestRejects' cases.
func FuzzParseManifest(f *testing.F) {
	fuzzcheck.Seed(f, "manifest.json", manifestJSON)
	fuzzcheck.Seed(f, "manifest.json_cut", manifestJSON[:len(manifestJSON)/3])
	for _, c := range manifestRejects() {
		fuzzcheck.Seed(f, strings.ReplaceAll(c.name, " ", "_"), []byte(c.json))
	}
	one := mustEntries(f)[:1]
	b, err := json.Marshal(manifest{Version: ManifestVersion, Entries: one})
	if err != nil {
		f.Fatal(err)
	}
	fuzzcheck.Seed(f, "one_entry", b)
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzcheck.Bounded(t, fuzzcheck.Limit(len(b), jsonPerByte), func() {
			es, err := parseManifest(b)
			if err != nil {
				zooError(t, err)
				return
			}
			for i, e := range es {
				checkEntry(t, e)
				if i > 0 && es[i-1].Name >= e.Name {
					t.Fatalf("entries %q and %q are out of order or repeated", es[i-1].Name, e.Name)
				}
			}
			enc, err := json.Marshal(manifest{Version: ManifestVersion, Entries: es})
			if err != nil {
				t.Fatalf("Marshal of parsed entries: %v", err)
			}
			back, err := parseManifest(enc)
			if err != nil {
				t.Fatalf("parseManifest of written entries: %v", err)
			}
			again, err := json.Marshal(manifest{Version: ManifestVersion, Entries: back})
			if err != nil || !bytes.Equal(again, enc) {
				t.Fatalf("manifest round trip changed:\n%s\ninto\n%s", enc, again)
			}
		})
	})
}

// checkEntry holds one parsed entry to FuzzParseManifest's contract.
func checkEntry(t *testing.T, e Entry) {
	t.Helper()
	if !entryName.MatchString(e.Name) || strings.Contains(e.Name, "..") || filepath.Base(e.Name) != e.Name {
		t.Fatalf("entry name %q", e.Name)
	}
	if !plainFile.MatchString(e.File) || strings.Contains(e.File, "..") || filepath.Base(e.File) != e.File {
		t.Fatalf("entry %s: file %q", e.Name, e.File)
	}
	if e.Modality != "image" && e.Modality != "text" {
		t.Fatalf("entry %s: modality %q", e.Name, e.Modality)
	}
	if (e.SHA256 != "" && len(e.SHA256) != 64) || !lowerHex.MatchString(e.SHA256) || !lowerHex.MatchString(e.SHA256Prefix) {
		t.Fatalf("entry %s: sha256 %q, prefix %q", e.Name, e.SHA256, e.SHA256Prefix)
	}
	if (e.Verified && e.SHA256 == "" && e.SHA256Prefix == "") || (e.Bundled && e.SHA256 == "") {
		t.Fatalf("entry %s: verified %v, bundled %v without a hash", e.Name, e.Verified, e.Bundled)
	}
	if e.Size < 0 || e.Params < 0 || e.EmbeddingDim < 0 {
		t.Fatalf("entry %s: size %d, params %d, embedding_dim %d", e.Name, e.Size, e.Params, e.EmbeddingDim)
	}
	if _, err := Arch(e.Arch); err != nil {
		t.Fatalf("entry %s: %v", e.Name, err)
	}
	if len(e.ArchConfig) > 0 {
		s, err := ParseSpec(string(e.ArchConfig))
		if err != nil {
			t.Fatalf("entry %s: %v", e.Name, err)
		}
		checkSpec(t, s)
	}
	if e.Preprocess != nil {
		if err := e.Preprocess.Validate(); err != nil {
			t.Fatalf("entry %s: %v", e.Name, err)
		}
	}
}

// zooError fails t unless err is one line in the package's own words.
func zooError(t *testing.T, err error) {
	t.Helper()
	if msg := err.Error(); !strings.HasPrefix(msg, "zoo: ") || strings.ContainsAny(msg, "\n\r") {
		t.Fatalf("error %q is not one line starting \"zoo: \"", msg)
	}
}

func mustEntries(f *testing.F) []Entry {
	es, err := Entries()
	if err != nil {
		f.Fatal(err)
	}
	return es
}
