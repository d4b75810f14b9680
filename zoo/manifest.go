package zoo

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/sslzoo/sslzoo/data/preprocess"
)

// The manifest is the one list of named zoo entries: what each model is,
// how it was trained, how to prepare its inputs, how well it does and where
// its weights come from. It is compiled into the binary, like timm's
// pretrained_cfg and torchvision's Weights records.
//
//go:embed manifest.json
var manifestJSON []byte

// ManifestVersion is the schema version of manifest.json this code reads.
const ManifestVersion = 1

// Entry is one named model of the zoo.
type Entry struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Method   string `json:"method"`   // simclr, mocov2, ..., or "supervised" for a classifier's backbone
	Arch     string `json:"arch"`     // architecture name (see ArchNames)
	Modality string `json:"modality"` // image or text
	// ArchConfig is the exact backbone (Spec.ConfigJSON) for entries whose
	// file is sslzoo safetensors; official checkpoints carry theirs once
	// imported.
	ArchConfig   json.RawMessage `json:"arch_config,omitempty"`
	EmbeddingDim int             `json:"embedding_dim"`
	Params       int64           `json:"params"`
	// File is the name the weights have in the cache (CACHE/NAME/FILE);
	// Size and SHA256 pin it. SHA256Prefix is for published files whose
	// authors give only a hash prefix (torchvision's file names).
	File         string   `json:"file"`
	Size         int64    `json:"size,omitempty"`
	SHA256       string   `json:"sha256,omitempty"`
	SHA256Prefix string   `json:"sha256_prefix,omitempty"`
	URLs         []string `json:"urls,omitempty"`
	Bundled      bool     `json:"bundled"`
	// Format is "" for sslzoo safetensors; for an official checkpoint it
	// is the `sslzoo import --format` that turns it into one.
	Format string `json:"format,omitempty"`
	// Verified says the file was downloaded, checked and measured here;
	// official checkpoints that no machine of this project could reach
	// are listed unverified.
	Verified   bool             `json:"verified"`
	License    string           `json:"license"`
	Source     string           `json:"source,omitempty"` // who published it
	Recipe     *Recipe          `json:"recipe,omitempty"`
	Preprocess *preprocess.Spec `json:"preprocess,omitempty"`
	Tokenizer  *Tokenizer       `json:"tokenizer,omitempty"`
	Metrics    []Metric         `json:"metrics,omitempty"`
	Notes      string           `json:"notes,omitempty"`
}

// Recipe is how an entry was trained, and what that cost.
type Recipe struct {
	Command   string  `json:"command"` // the exact sslzoo train command line
	Seed      uint64  `json:"seed"`
	Epochs    int     `json:"epochs"`
	Steps     int64   `json:"steps"`
	WallTimeS float64 `json:"wall_time_s"`
	Machine   string  `json:"machine"` // e.g. "2 cores (AMD EPYC, AVX-512), Go 1.26.8"
}

// Tokenizer describes a text entry's vocabulary.
type Tokenizer struct {
	Kind        string `json:"kind"` // wordpiece
	VocabSize   int    `json:"vocab_size"`
	VocabSHA256 string `json:"vocab_sha256"`
	Lowercase   bool   `json:"lowercase"`
	MaxLength   int    `json:"max_length"`
}

// Metric is one measured quality figure and the command that measured it.
type Metric struct {
	Dataset  string  `json:"dataset"`  // e.g. fashion-mnist
	Protocol string  `json:"protocol"` // knn, linear, mlm-accuracy, ...
	Top1     float64 `json:"top1"`     // percent
	Command  string  `json:"command"`
}

type manifest struct {
	Version int     `json:"version"`
	Entries []Entry `json:"entries"`
}

var (
	entries    []Entry
	entriesErr error
)

func init() { entries, entriesErr = parseManifest(manifestJSON) }

var entryName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,99}$`)

// fileName is entryName with upper case allowed, spelled out rather than
// matched through strings.ToLower, which folds the Kelvin sign into "k".
var fileName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,99}$`)

// parseManifest reads and checks a manifest: names unique and safe as
// folder names, files safe as file names, hashes well-formed, archs known.
func parseManifest(raw []byte) ([]Entry, error) {
	var m manifest
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("zoo: manifest: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("zoo: manifest: trailing content after the JSON object")
	}
	if m.Version != ManifestVersion {
		return nil, fmt.Errorf("zoo: manifest version %d; this build reads version %d", m.Version, ManifestVersion)
	}
	seen := map[string]bool{}
	hexRe := regexp.MustCompile(`^[0-9a-f]*$`)
	for i, e := range m.Entries {
		switch {
		case !entryName.MatchString(e.Name) || strings.Contains(e.Name, ".."):
			return nil, fmt.Errorf("zoo: manifest entry %d: name %q is not a safe lower-case name", i, e.Name)
		case seen[e.Name]:
			return nil, fmt.Errorf("zoo: manifest: entry %q twice", e.Name)
		case !fileName.MatchString(e.File) || strings.Contains(e.File, ".."):
			return nil, fmt.Errorf("zoo: manifest entry %s: file %q is not a plain file name", e.Name, e.File)
		case e.Modality != "image" && e.Modality != "text":
			return nil, fmt.Errorf("zoo: manifest entry %s: modality %q (want image or text)", e.Name, e.Modality)
		case !hexRe.MatchString(e.SHA256) || (e.SHA256 != "" && len(e.SHA256) != 64):
			return nil, fmt.Errorf("zoo: manifest entry %s: sha256 %q is not 64 hex digits", e.Name, e.SHA256)
		case !hexRe.MatchString(e.SHA256Prefix):
			return nil, fmt.Errorf("zoo: manifest entry %s: sha256_prefix %q is not hex", e.Name, e.SHA256Prefix)
		case e.SHA256 == "" && e.SHA256Prefix == "" && e.Verified:
			return nil, fmt.Errorf("zoo: manifest entry %s: verified but no sha256", e.Name)
		case e.Bundled && e.SHA256 == "":
			return nil, fmt.Errorf("zoo: manifest entry %s: bundled without a sha256", e.Name)
		case e.Size < 0 || e.Params < 0 || e.EmbeddingDim < 0:
			return nil, fmt.Errorf("zoo: manifest entry %s: negative size %d, params %d or embedding_dim %d", e.Name, e.Size, e.Params, e.EmbeddingDim)
		}
		if _, err := Arch(e.Arch); err != nil {
			return nil, fmt.Errorf("zoo: manifest entry %s: %w", e.Name, err)
		}
		if len(e.ArchConfig) > 0 {
			if _, err := ParseSpec(string(e.ArchConfig)); err != nil {
				return nil, fmt.Errorf("zoo: manifest entry %s: %w", e.Name, err)
			}
		}
		if e.Preprocess != nil {
			e.Preprocess.Normalize()
			if err := e.Preprocess.Validate(); err != nil {
				return nil, fmt.Errorf("zoo: manifest entry %s: %w", e.Name, err)
			}
			m.Entries[i] = e
		}
		seen[e.Name] = true
	}
	sort.Slice(m.Entries, func(a, b int) bool { return m.Entries[a].Name < m.Entries[b].Name })
	return m.Entries, nil
}

// Entries lists the zoo, sorted by name. It fails only when the compiled-in
// manifest is broken, which a test rules out.
func Entries() ([]Entry, error) {
	if entriesErr != nil {
		return nil, entriesErr
	}
	out := make([]Entry, len(entries))
	copy(out, entries)
	return out, nil
}

// Lookup finds an entry by name. An unknown name's error suggests the
// closest names.
func Lookup(name string) (Entry, error) {
	all, err := Entries()
	if err != nil {
		return Entry{}, err
	}
	for _, e := range all {
		if e.Name == name {
			return e, nil
		}
	}
	names := make([]string, len(all))
	for i, e := range all {
		names[i] = e.Name
	}
	if near := Closest(name, names, 3); len(near) > 0 {
		return Entry{}, fmt.Errorf("zoo: no model named %q; did you mean %s? ('sslzoo list' shows all)", name, strings.Join(near, ", "))
	}
	return Entry{}, fmt.Errorf("zoo: no model named %q ('sslzoo list' shows all)", name)
}

// Closest returns up to n candidates nearest to name: those containing it
// first, then by edit distance, keeping only plausible matches.
func Closest(name string, candidates []string, n int) []string {
	type scored struct {
		s string
		d int
	}
	var sc []scored
	for _, c := range candidates {
		d := editDistance(name, c)
		if strings.Contains(c, name) || strings.Contains(name, c) {
			d = min(d, 1)
		}
		if d <= max(2, len(name)/2) {
			sc = append(sc, scored{c, d})
		}
	}
	slices.SortStableFunc(sc, func(a, b scored) int {
		if a.d != b.d {
			return a.d - b.d
		}
		return strings.Compare(a.s, b.s)
	})
	var out []string
	for i := 0; i < len(sc) && i < n; i++ {
		out = append(out, sc[i].s)
	}
	return out
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
