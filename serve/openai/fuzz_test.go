package openai

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/internal/fuzzcheck"
)

// FuzzDecodeRequest: any body gives a one-line error or a request with 1
// to MaxInputs inputs, a known encoding_format and dimensions 0 (not
// asked) or positive, which written back as JSON decodes to the same
// request. The seeds are TestDecodeRequest's bodies and
// TestDecodeRequestErrors' bad ones.
func FuzzDecodeRequest(f *testing.F) {
	for i, tc := range decodeRequestCases() {
		fuzzcheck.Seed(f, "good_"+string(rune('a'+i)), []byte(tc.body))
	}
	for i, tc := range decodeRequestErrorCases() {
		fuzzcheck.Seed(f, "bad_"+string(rune('a'+i)), []byte(tc.body))
	}
	fuzzcheck.Seed(f, "nested_lines", []byte("{\"input\":[\n[\n\"b\"]]}"))
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzcheck.Bounded(t, fuzzcheck.Limit(len(body), 16), func() {
			r, err := DecodeRequest(body)
			if err != nil {
				checkOneLine(t, err)
				return
			}
			if len(r.Inputs) == 0 || len(r.Inputs) > MaxInputs {
				t.Fatalf("%d inputs", len(r.Inputs))
			}
			if (r.EncodingFormat != FormatFloat && r.EncodingFormat != FormatBase64) || r.Dimensions < 0 {
				t.Fatalf("encoding_format %q, dimensions %d", r.EncodingFormat, r.Dimensions)
			}
			w := map[string]any{"model": r.Model, "input": r.Inputs, "encoding_format": r.EncodingFormat, "user": r.User}
			if r.Dimensions > 0 {
				w["dimensions"] = r.Dimensions
			}
			enc, err := json.Marshal(w)
			if err != nil {
				t.Fatal(err)
			}
			back, err := DecodeRequest(enc)
			if err != nil {
				t.Fatalf("DecodeRequest of the request written back: %v", err)
			}
			if !reflect.DeepEqual(back, r) {
				t.Fatalf("round trip changed %+v into %+v", r, back)
			}
		})
	})
}

// FuzzParseDataURL: any string and limit give a one-line error or the
// bytes of a base64 data: URL, no more than the limit (when it is not
// negative), which DataURL writes back into a URL giving the same media
// type and bytes. The seeds are the golden PNG's URL (as it is, and
// wrapped and unpadded as TestGolden has it) and TestParseDataURLErrors'
// bad URLs.
func FuzzParseDataURL(f *testing.F) {
	var g golden
	if err := json.Unmarshal(fuzzcheck.File(f, "testdata/golden.json"), &g); err != nil {
		f.Fatal(err)
	}
	fuzzcheck.Seed(f, "golden_png", g.PNGDataURL, 1<<20)
	payload := g.PNGDataURL[len("data:image/png;base64,"):]
	fuzzcheck.Seed(f, "golden_png_wrapped", "data:image/png;base64,"+payload[:10]+"\r\n"+strings.TrimRight(payload, "="), 1<<20)
	fuzzcheck.Seed(f, "golden_png_no_limit", g.PNGDataURL, -1)
	for i, tc := range dataURLErrorCases() {
		fuzzcheck.Seed(f, "bad_"+string(rune('a'+i)), tc.url, tc.max)
	}
	// Unpadded: 5 bytes, 2 more than StdEncoding.DecodedLen of its length.
	fuzzcheck.Seed(f, "unpadded_at_limit", "data:;base64,AAAAAAA", 4)
	f.Fuzz(func(t *testing.T, s string, maxBytes int) {
		fuzzcheck.Bounded(t, fuzzcheck.Limit(len(s), 16), func() {
			media, data, err := ParseDataURL(s, maxBytes)
			if err != nil {
				checkOneLine(t, err)
				return
			}
			if !IsDataURL(s) || (maxBytes >= 0 && len(data) > maxBytes) {
				t.Fatalf("%d bytes under a limit of %d from %q", len(data), maxBytes, s)
			}
			m2, d2, err := ParseDataURL(DataURL(media, data), len(data))
			if err != nil || m2 != media || !bytes.Equal(d2, data) {
				t.Fatalf("DataURL(%q, %d bytes) read back as %q, %d bytes, %v", media, len(data), m2, len(d2), err)
			}
		})
	})
}

// FuzzDecodeBase64: any string gives a one-line error or one float32 per
// 4 bytes it decodes to, whose EncodeBase64 is the canonical encoding of
// those bytes and decodes to the same bits. The seeds are the numpy-
// written golden embedding, an empty one and cut or odd-sized ones.
func FuzzDecodeBase64(f *testing.F) {
	var g golden
	if err := json.Unmarshal(fuzzcheck.File(f, "testdata/golden.json"), &g); err != nil {
		f.Fatal(err)
	}
	fuzzcheck.Seed(f, "golden", g.Base64)
	fuzzcheck.Seed(f, "empty", "")
	fuzzcheck.Seed(f, "cut", g.Base64[:len(g.Base64)-6])
	fuzzcheck.Seed(f, "five_bytes", base64.StdEncoding.EncodeToString([]byte{1, 2, 3, 4, 5}))
	fuzzcheck.Seed(f, "nan", EncodeBase64([]float32{float32(math.NaN()), float32(math.Inf(-1))}))
	f.Fuzz(func(t *testing.T, s string) {
		fuzzcheck.Bounded(t, fuzzcheck.Limit(len(s), 16), func() {
			v, err := DecodeBase64(s)
			if err != nil {
				checkOneLine(t, err)
				return
			}
			raw, err := base64.StdEncoding.DecodeString(s)
			if err != nil || len(raw) != 4*len(v) {
				t.Fatalf("%d values from %d bytes (%v)", len(v), len(raw), err)
			}
			for i, x := range v {
				if math.Float32bits(x) != binary.LittleEndian.Uint32(raw[4*i:]) {
					t.Fatalf("value %d is not the bytes' float32", i)
				}
			}
			enc := EncodeBase64(v)
			if enc != base64.StdEncoding.EncodeToString(raw) {
				t.Fatalf("EncodeBase64 gave %q for the bytes of %q", enc, s)
			}
			back, err := DecodeBase64(enc)
			if err != nil || !sameBits(back, v) {
				t.Fatalf("DecodeBase64 of EncodeBase64: %v", err)
			}
		})
	})
}

// FuzzDecodeResponse: any body gives a one-line error or one embedding
// per data item, each in place, which AppendResponse writes back (as
// base64, and as floats when they are finite) into the same response. The
// seeds are TestResponse's responses in both encodings and error bodies.
func FuzzDecodeResponse(f *testing.F) {
	embs := [][]float32{{0.5, -1e-7, 3}, {float32(math.Pi), 0, -2}}
	for _, format := range []string{FormatFloat, FormatBase64} {
		buf, err := AppendResponse(nil, "simclr", embs, format, 9)
		if err != nil {
			f.Fatal(err)
		}
		fuzzcheck.Seed(f, "response_"+format, buf)
	}
	fuzzcheck.Seed(f, "error", []byte(`{"error":"model \"x\" is not served here"}`))
	fuzzcheck.Seed(f, "error_object", []byte("{\"error\":{\"message\":\"two\\nlines\",\n\"type\":\"invalid_request_error\"}}"))
	fuzzcheck.Seed(f, "index_twice", []byte(`{"object":"list","data":[{"object":"embedding","index":0,"embedding":[1]},{"object":"embedding","index":0,"embedding":[2]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzcheck.Bounded(t, fuzzcheck.Limit(len(body), 16), func() {
			r, err := DecodeResponse(body)
			if err != nil {
				checkOneLine(t, err)
				return
			}
			for i, e := range r.Embeddings {
				if e == nil {
					t.Fatalf("embedding %d of %d is missing", i, len(r.Embeddings))
				}
			}
			for _, format := range []string{FormatBase64, FormatFloat} {
				buf, err := AppendResponse(nil, r.Model, r.Embeddings, format, r.PromptTokens)
				if err != nil {
					if format == FormatFloat {
						continue // a NaN or Inf came as base64
					}
					t.Fatalf("AppendResponse: %v", err)
				}
				back, err := DecodeResponse(buf)
				if err != nil {
					t.Fatalf("DecodeResponse of AppendResponse (%s): %v", format, err)
				}
				if back.Model != r.Model || back.PromptTokens != r.PromptTokens || len(back.Embeddings) != len(r.Embeddings) {
					t.Fatalf("round trip (%s) changed %+v into %+v", format, r, back)
				}
				for i := range r.Embeddings {
					if !sameBits(back.Embeddings[i], r.Embeddings[i]) {
						t.Fatalf("round trip (%s) changed embedding %d", format, i)
					}
				}
			}
		})
	})
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func checkOneLine(t *testing.T, err error) {
	t.Helper()
	if msg := err.Error(); msg == "" || strings.ContainsAny(msg, "\r\n") {
		t.Fatalf("error %q is not one line", msg)
	}
}
