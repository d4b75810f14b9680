// Package openai reads and writes the messages of the OpenAI embeddings
// API (POST /v1/embeddings) as sslzoo serve speaks them, so that OpenAI's
// client libraries, and the tools built on them, embed through sslzoo
// unchanged.
//
// A request's "input" is one string or a list of them: texts for a text
// model, or images as data URLs (data:image/png;base64,...) for an image
// model. "encoding_format" "base64" returns each embedding as the base64 of
// its little-endian float32 bytes, as OpenAI does; "float" (the default)
// returns JSON numbers.
package openai

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/sslzoo/sslzoo/internal/oneline"
)

// MaxInputs is the most inputs one request may hold (OpenAI's own limit).
const MaxInputs = 2048

// Encoding formats of an embedding in the response.
const (
	FormatFloat  = "float"
	FormatBase64 = "base64"
)

// Request is a decoded embeddings request.
type Request struct {
	Model          string
	Inputs         []string
	EncodingFormat string // FormatFloat or FormatBase64
	Dimensions     int    // 0 when not asked
	User           string
}

type wireRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     *int            `json:"dimensions"`
	User           string          `json:"user"`
}

// DecodeRequest parses a request body; each error is one line saying what
// to fix.
func DecodeRequest(body []byte) (*Request, error) {
	var w wireRequest
	if err := json.Unmarshal(body, &w); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("malformed JSON at byte %d of %d: %v", se.Offset, len(body), err)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("field %q is a JSON %s, want %v", te.Field, te.Value, te.Type)
		}
		return nil, fmt.Errorf("not an embeddings request: %v", err)
	}
	r := &Request{Model: w.Model, EncodingFormat: w.EncodingFormat, User: w.User}
	switch r.EncodingFormat {
	case "":
		r.EncodingFormat = FormatFloat
	case FormatFloat, FormatBase64:
	default:
		return nil, fmt.Errorf("encoding_format %q: want \"float\" or \"base64\"", w.EncodingFormat)
	}
	if w.Dimensions != nil {
		if *w.Dimensions < 1 {
			return nil, fmt.Errorf("dimensions %d: want at least 1", *w.Dimensions)
		}
		r.Dimensions = *w.Dimensions
	}
	in := bytes.TrimSpace(w.Input)
	switch {
	case len(in) == 0 || string(in) == "null":
		return nil, errors.New(`no "input": give a string or a list of strings (texts, or data:image/...;base64 URLs)`)
	case in[0] == '"':
		var s string
		if err := json.Unmarshal(in, &s); err != nil {
			return nil, fmt.Errorf("input: %v", err)
		}
		r.Inputs = []string{s}
	case in[0] == '[':
		var list []json.RawMessage
		if err := json.Unmarshal(in, &list); err != nil {
			return nil, fmt.Errorf("input: %v", err)
		}
		if len(list) == 0 {
			return nil, errors.New("input is an empty list: give at least one string")
		}
		if len(list) > MaxInputs {
			return nil, fmt.Errorf("input has %d items, more than the %d one request may hold; split it", len(list), MaxInputs)
		}
		r.Inputs = make([]string, len(list))
		for i, item := range list {
			if len(item) == 0 || item[0] != '"' {
				return nil, fmt.Errorf("input[%d] is %s, not a string (token arrays are not accepted: the server tokenizes text with the model's own vocabulary)", i, clip(item))
			}
			if err := json.Unmarshal(item, &r.Inputs[i]); err != nil {
				return nil, fmt.Errorf("input[%d]: %v", i, err)
			}
		}
	default:
		return nil, fmt.Errorf("input is %s: give a string or a list of strings", clip(in))
	}
	return r, nil
}

// clip shortens raw JSON for an error message, on one line: the line
// breaks and tabs JSON allows between tokens become spaces.
func clip(b []byte) string { return oneline.Clip(string(b), 24) }

// IsDataURL reports whether s is a data: URL (how images come in).
func IsDataURL(s string) bool {
	return len(s) >= 5 && strings.EqualFold(s[:5], "data:")
}

// ParseDataURL returns the media type and the decoded bytes of a base64
// data URL, data:[<mediatype>][;parameters];base64,<data>. Line breaks in
// the base64 text, and missing padding, are tolerated. An URL whose
// decoded data would exceed maxBytes is refused before decoding.
func ParseDataURL(s string, maxBytes int) (mediaType string, data []byte, err error) {
	if !IsDataURL(s) {
		return "", nil, fmt.Errorf("%q is not a data: URL", clipString(s))
	}
	meta, payload, ok := strings.Cut(s[5:], ",")
	if !ok {
		return "", nil, errors.New("data URL has no ',' before its data")
	}
	params := strings.Split(meta, ";")
	if !strings.EqualFold(params[len(params)-1], "base64") {
		return "", nil, fmt.Errorf("data URL %q is not base64 (want data:image/png;base64,...)", clipString(s))
	}
	mediaType = params[0]
	if strings.ContainsAny(payload, "\r\n") {
		payload = strings.NewReplacer("\r", "", "\n", "").Replace(payload)
	}
	enc := base64.StdEncoding
	if !strings.HasSuffix(payload, "=") && len(payload)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	// The size from the text's length, exact for valid base64: the
	// unpadded kind has up to 2 bytes more than StdEncoding's DecodedLen
	// says, the padded kind as many less as it has "=".
	n := enc.DecodedLen(len(payload)) - min(len(payload)-len(strings.TrimRight(payload, "=")), 2)
	if maxBytes >= 0 && n > maxBytes {
		return "", nil, fmt.Errorf("data URL holds %d bytes, over the %d-byte limit", n, maxBytes)
	}
	data, err = enc.DecodeString(payload)
	if err != nil {
		return "", nil, fmt.Errorf("data URL: bad base64: %v", err)
	}
	if maxBytes >= 0 && len(data) > maxBytes { // malformed padding the estimate missed
		return "", nil, fmt.Errorf("data URL holds %d bytes, over the %d-byte limit", len(data), maxBytes)
	}
	return mediaType, data, nil
}

func clipString(s string) string { return oneline.Clip(s, 40) }

// DataURL is an image's bytes as a data: URL, for clients.
func DataURL(mediaType string, data []byte) string {
	return "data:" + mediaType + ";base64," + base64.StdEncoding.EncodeToString(data)
}

// EncodeBase64 is an embedding as OpenAI's base64 form: its float32
// values, little-endian, base64-encoded.
func EncodeBase64(v []float32) string {
	b := make([]byte, 0, 4*len(v))
	for _, f := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	return base64.StdEncoding.EncodeToString(b)
}

// DecodeBase64 reads an embedding in the base64 form.
func DecodeBase64(s string) ([]float32, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("embedding: bad base64: %v", err)
	}
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("embedding: %d bytes is not a whole number of float32 values", len(b))
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}

// AppendResponse appends the response for embeddings (in input order) to
// buf: {"object":"list","data":[{"object":"embedding","index":i,
// "embedding":...}],"model":...,"usage":{...}}.
func AppendResponse(buf []byte, model string, embeddings [][]float32, format string, promptTokens int) ([]byte, error) {
	buf = append(buf, `{"object":"list","data":[`...)
	for i, e := range embeddings {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"object":"embedding","index":`...)
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, `,"embedding":`...)
		if format == FormatBase64 {
			buf = append(buf, '"')
			buf = append(buf, EncodeBase64(e)...)
			buf = append(buf, '"')
		} else {
			buf = append(buf, '[')
			for j, v := range e {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					return nil, fmt.Errorf("embedding %d value %d is %v, which JSON cannot carry; ask for encoding_format base64", i, j, v)
				}
				if j > 0 {
					buf = append(buf, ',')
				}
				buf = strconv.AppendFloat(buf, float64(v), 'g', -1, 32)
			}
			buf = append(buf, ']')
		}
		buf = append(buf, '}')
	}
	buf = append(buf, `],"model":`...)
	m, _ := json.Marshal(model)
	buf = append(buf, m...)
	buf = append(buf, `,"usage":{"prompt_tokens":`...)
	buf = strconv.AppendInt(buf, int64(promptTokens), 10)
	buf = append(buf, `,"total_tokens":`...)
	buf = strconv.AppendInt(buf, int64(promptTokens), 10)
	return append(buf, "}}"...), nil
}

// Response is a decoded embeddings response, for clients.
type Response struct {
	Model string
	// Embeddings are in input order, whichever encoding they came in.
	Embeddings   [][]float32
	PromptTokens int
	TotalTokens  int
}

// DecodeResponse parses a response body; a {"error": ...} body becomes
// that error.
func DecodeResponse(body []byte) (*Response, error) {
	var w struct {
		Object string `json:"object"`
		Data   []struct {
			Object    string          `json:"object"`
			Index     int             `json:"index"`
			Embedding json.RawMessage `json:"embedding"`
		} `json:"data"`
		Model string `json:"model"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
		Error json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("not an embeddings response: %v", err)
	}
	if e := bytes.TrimSpace(w.Error); len(e) > 0 && string(e) != "null" {
		return nil, errors.New(errorMessage(e))
	}
	if w.Object != "list" {
		return nil, fmt.Errorf("response object %q, want \"list\"", w.Object)
	}
	r := &Response{Model: w.Model, PromptTokens: w.Usage.PromptTokens, TotalTokens: w.Usage.TotalTokens,
		Embeddings: make([][]float32, len(w.Data))}
	for _, d := range w.Data {
		if d.Object != "embedding" || d.Index < 0 || d.Index >= len(w.Data) || r.Embeddings[d.Index] != nil {
			return nil, fmt.Errorf("bad data item: object %q index %d of %d", d.Object, d.Index, len(w.Data))
		}
		var v []float32
		var s string
		if err := json.Unmarshal(d.Embedding, &v); err != nil {
			if err := json.Unmarshal(d.Embedding, &s); err != nil {
				return nil, fmt.Errorf("embedding %d is neither a float list nor base64", d.Index)
			}
			if v, err = DecodeBase64(s); err != nil {
				return nil, err
			}
		}
		if v == nil {
			v = []float32{}
		}
		r.Embeddings[d.Index] = v
	}
	return r, nil
}

// errorMessage is an error body's "error" as one line: the string itself,
// or the "message" of OpenAI's {"message", "type", ...} object, or else
// the start of the JSON.
func errorMessage(raw []byte) string {
	var msg string
	if json.Unmarshal(raw, &msg) == nil && msg != "" {
		return oneline.Clip(msg, len(msg))
	}
	var obj struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &obj) == nil && obj.Message != "" {
		return oneline.Clip(obj.Message, len(obj.Message))
	}
	return "error " + clip(raw)
}
