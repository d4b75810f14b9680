package openai

import (
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// scripts/gen_openai_golden.py writes testdata/golden.json; rerun it to
// regenerate.
type golden struct {
	Values     []float64 `json:"values"`
	Base64     string    `json:"base64"`
	PNGDataURL string    `json:"png_data_url"`
	PNGHex     string    `json:"png_hex"`
}

func readGolden(t *testing.T) golden {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// The base64 form is byte for byte what numpy writes and OpenAI's client
// reads; a PIL PNG comes back out of its data URL intact.
func TestGolden(t *testing.T) {
	g := readGolden(t)
	v := make([]float32, len(g.Values))
	for i, f := range g.Values {
		v[i] = float32(f)
	}
	if got := EncodeBase64(v); got != g.Base64 {
		t.Errorf("EncodeBase64 = %s, numpy gives %s", got, g.Base64)
	}
	back, err := DecodeBase64(g.Base64)
	if err != nil || !reflect.DeepEqual(back, v) {
		t.Errorf("DecodeBase64: %v, %v", back, err)
	}
	media, data, err := ParseDataURL(g.PNGDataURL, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if media != "image/png" || hex.EncodeToString(data) != g.PNGHex {
		t.Errorf("data URL gave %s, %d bytes", media, len(data))
	}
	// Wrapped lines and missing padding, as some encoders write them.
	payload := g.PNGDataURL[len("data:image/png;base64,"):]
	wrapped := "data:image/png;base64," + payload[:10] + "\r\n" + strings.TrimRight(payload[10:], "=")
	if _, data2, err := ParseDataURL(wrapped, 1<<20); err != nil || hex.EncodeToString(data2) != g.PNGHex {
		t.Errorf("wrapped, unpadded: %v", err)
	}
}

type decodeRequestCase struct {
	body string
	want Request
}

func decodeRequestCases() []decodeRequestCase {
	return []decodeRequestCase{
		{`{"model":"m","input":"hello"}`, Request{Model: "m", Inputs: []string{"hello"}, EncodingFormat: "float"}},
		{`{"model":"m","input":["a",""],"encoding_format":"base64","dimensions":128,"user":"u"}`,
			Request{Model: "m", Inputs: []string{"a", ""}, EncodingFormat: "base64", Dimensions: 128, User: "u"}},
		{`{"input":"data:image/png;base64,AAAA"}`, Request{Inputs: []string{"data:image/png;base64,AAAA"}, EncodingFormat: "float"}},
	}
}

func TestDecodeRequest(t *testing.T) {
	for _, tc := range decodeRequestCases() {
		got, err := DecodeRequest([]byte(tc.body))
		if err != nil {
			t.Errorf("%s: %v", tc.body, err)
			continue
		}
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.body, *got, tc.want)
		}
	}
}

// decodeRequestErrorCases are bodies DecodeRequest refuses, and what it
// says about each.
func decodeRequestErrorCases() []struct{ body, want string } {
	many := `{"input":[` + strings.Repeat(`"x",`, MaxInputs) + `"x"]}`
	return []struct{ body, want string }{
		{`{"input":"x",}`, "malformed JSON at byte"},
		{`{"input": 3`, "malformed JSON"},
		{`{"model":3,"input":"x"}`, `field "model" is a JSON number`},
		{`{"model":"m"}`, `no "input"`},
		{`{"input":null}`, `no "input"`},
		{`{"input":[]}`, "input is an empty list"},
		{`{"input":[1,2,3]}`, "input[0] is 1, not a string (token arrays are not accepted"},
		{`{"input":["a",["b"]]}`, "input[1] is [\"b\"], not a string"},
		{`{"input":{"text":"a"}}`, "input is {\"text\":\"a\"}: give a string"},
		{`{"input":"a","encoding_format":"float16"}`, `encoding_format "float16"`},
		{`{"input":"a","dimensions":0}`, "dimensions 0"},
		{many, "more than the 2048"},
	}
}

func TestDecodeRequestErrors(t *testing.T) {
	for _, tc := range decodeRequestErrorCases() {
		_, err := DecodeRequest([]byte(tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.60s: got %v, want an error containing %q", tc.body, err, tc.want)
		}
	}
}

type dataURLErrorCase struct {
	url  string
	max  int
	want string
}

func dataURLErrorCases() []dataURLErrorCase {
	return []dataURLErrorCase{
		{"http://example.invalid/cat.png", 100, "is not a data: URL"},
		{"data:image/png;base64", 100, "no ','"},
		{"data:image/png,%89PNG", 100, "is not base64"},
		{"data:image/png;base64,!!!!", 100, "bad base64"},
		{"data:image/png;base64," + strings.Repeat("A", 400), 100, "over the 100-byte limit"},
	}
}

func TestParseDataURLErrors(t *testing.T) {
	for _, tc := range dataURLErrorCases() {
		_, _, err := ParseDataURL(tc.url, tc.max)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.40s: got %v, want an error containing %q", tc.url, err, tc.want)
		}
	}
	if !IsDataURL("DATA:image/png;base64,") || IsDataURL("dat") {
		t.Error("IsDataURL")
	}
}

// A response read as plain JSON has OpenAI's fields; floats are exact
// float32 values either way, and DecodeResponse reads both encodings.
func TestResponse(t *testing.T) {
	embs := [][]float32{{0.5, -1e-7, 3}, {float32(math.Pi), 0, -2}}
	for _, format := range []string{FormatFloat, FormatBase64} {
		buf, err := AppendResponse(nil, "simclr", embs, format, 9)
		if err != nil {
			t.Fatal(err)
		}
		var w struct {
			Object string `json:"object"`
			Data   []struct {
				Object    string `json:"object"`
				Index     int    `json:"index"`
				Embedding any    `json:"embedding"`
			} `json:"data"`
			Model string         `json:"model"`
			Usage map[string]int `json:"usage"`
		}
		if err := json.Unmarshal(buf, &w); err != nil {
			t.Fatalf("%s: %v: %s", format, err, buf)
		}
		if w.Object != "list" || w.Model != "simclr" || len(w.Data) != 2 || w.Data[1].Object != "embedding" || w.Data[1].Index != 1 ||
			w.Usage["prompt_tokens"] != 9 || w.Usage["total_tokens"] != 9 {
			t.Errorf("%s: %s", format, buf)
		}
		if _, isString := w.Data[0].Embedding.(string); isString != (format == FormatBase64) {
			t.Errorf("%s: embedding is %T", format, w.Data[0].Embedding)
		}
		r, err := DecodeResponse(buf)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(r.Embeddings, embs) || r.Model != "simclr" || r.PromptTokens != 9 {
			t.Errorf("%s: decoded %+v", format, r)
		}
	}
	if _, err := AppendResponse(nil, "m", [][]float32{{float32(math.Inf(1))}}, FormatFloat, 0); err == nil {
		t.Error("Inf as a JSON number was written")
	}
	if _, err := DecodeResponse([]byte(`{"error":"model \"x\" is not served here"}`)); err == nil || !strings.Contains(err.Error(), "not served") {
		t.Errorf("error body: %v", err)
	}
}
