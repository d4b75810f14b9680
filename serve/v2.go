package serve

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/sslzoo/sslzoo"
	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/serve/kserve"
)

// modelVersion is the one version every served model has.
const modelVersion = "1"

// platform is what Triton calls a model run by ONNX Runtime.
const platform = "onnxruntime_onnx"

// v2Model resolves the {name} (and {version}) of a /v2/models path.
func (s *Server) v2Model(r *http.Request) (*model, error) {
	m, err := s.lookup(r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	if v := r.PathValue("version"); v != "" && v != modelVersion {
		return nil, errorf(http.StatusNotFound, "model %q has no version %q (it has version %s)", m.name, clipName(v), modelVersion)
	}
	return m, nil
}

func (s *Server) serverMetadata(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, kserve.ServerMetadata{Name: "sslzoo", Version: s.cfg.Version,
		Extensions: []string{"binary_tensor_data"}})
	return nil
}

func (s *Server) modelReady(w http.ResponseWriter, r *http.Request) error {
	m, err := s.v2Model(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": m.name, "ready": true})
	return nil
}

func (s *Server) modelMetadata(w http.ResponseWriter, r *http.Request) error {
	m, err := s.v2Model(r)
	if err != nil {
		return err
	}
	md, err := m.metadata()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, md)
	return nil
}

// metadata describes the model as GET /v2/models/NAME answers: its
// tensors, and under parameters how to prepare its inputs.
func (m *model) metadata() (*kserve.ModelMetadata, error) {
	eng := m.enc.Engine()
	in, err := tensorMetadata(eng.Inputs())
	if err != nil {
		return nil, err
	}
	out, err := tensorMetadata(eng.Outputs())
	if err != nil {
		return nil, err
	}
	params := map[string]any{"modality": m.enc.Modality(), "engine": engineName(eng),
		"embedding_output": eng.Outputs()[m.enc.EmbeddingOutput()].Name}
	if d := m.enc.Dim(); d > 0 {
		params["embedding_dim"] = d
	}
	if m.enc.Modality() == sslzoo.ModalityText {
		params["seq_len"] = m.enc.SeqLen()
		params["vocab_size"] = m.enc.Tokenizer().Vocab().Size()
	} else {
		params["preprocess"] = m.enc.Preprocess()
	}
	return &kserve.ModelMetadata{Name: m.name, Versions: []string{modelVersion}, Platform: platform,
		Inputs: in, Outputs: out, Parameters: params}, nil
}

func tensorMetadata(vs []onnxrt.ValueInfo) ([]kserve.TensorMetadata, error) {
	md := make([]kserve.TensorMetadata, len(vs))
	for i, v := range vs {
		dt, ok := kserve.Datatype(v.DType)
		if !ok {
			return nil, fmt.Errorf("tensor %q has type %v, which the v2 protocol cannot carry", v.Name, v.DType)
		}
		shape := make([]int64, len(v.Shape))
		for k, d := range v.Shape {
			shape[k] = int64(d)
		}
		md[i] = kserve.TensorMetadata{Name: v.Name, Datatype: dt, Shape: shape}
	}
	return md, nil
}

// infer answers POST /v2/models/NAME/infer.
func (s *Server) infer(w http.ResponseWriter, r *http.Request) error {
	var m *model
	name := func() string {
		if m == nil {
			return ""
		}
		return m.name
	}
	return s.inference(protoV2, name, w, func() error {
		var err error
		if m, err = s.v2Model(r); err != nil {
			return err
		}
		defer s.track(m)()
		body, err := s.readBody(w, r)
		if err != nil {
			return err
		}
		headerLen := int64(-1)
		if h := r.Header.Get(kserve.HeaderLength); h != "" {
			if headerLen, err = strconv.ParseInt(h, 10, 64); err != nil || headerLen < 0 {
				return errorf(http.StatusBadRequest, "%s %q is not a byte count", kserve.HeaderLength, clipName(h))
			}
		}
		req, err := kserve.DecodeRequest(body, headerLen)
		if err != nil {
			return errorf(http.StatusBadRequest, "%v", err)
		}
		j, err := m.v2Job(req, s.cfg.MaxRows)
		if err != nil {
			return err
		}
		outputs, err := m.v2Outputs(req)
		if err != nil {
			return err
		}
		res, err := s.submit(r.Context(), m, j)
		if err != nil {
			return err
		}
		resp := &kserve.Response{ModelName: m.name, ModelVersion: modelVersion, ID: req.ID}
		binary := false
		for _, o := range outputs {
			resp.Outputs = append(resp.Outputs, kserve.Output{Name: o.name, Tensor: res[o.index], Binary: o.binary})
			binary = binary || o.binary
		}
		buf, jsonLen, err := kserve.AppendResponse(nil, resp)
		if err != nil {
			return errorf(http.StatusInternalServerError, "encoding the response: %v", err)
		}
		contentType := "application/json"
		if binary {
			w.Header().Set(kserve.HeaderLength, strconv.Itoa(jsonLen))
			contentType = "application/octet-stream"
		}
		writeBody(w, contentType, buf)
		return nil
	})
}

// v2Job matches a request's inputs to the model's: every input once, by
// name, with the model's datatype and shape (any batch), all with the
// same rows.
func (m *model) v2Job(req *kserve.Request, maxRows int) (job, error) {
	decl := m.enc.Engine().Inputs()
	given := map[string]*onnxrt.Tensor{}
	for _, in := range req.Inputs {
		given[in.Name] = in.Tensor
	}
	j := job{inputs: make([]*onnxrt.Tensor, len(decl)), rows: -1}
	for i, d := range decl {
		t, ok := given[d.Name]
		if !ok {
			return job{}, errorf(http.StatusBadRequest, "model %q takes inputs %s; the request has no %q", m.name, inputNames(decl), d.Name)
		}
		delete(given, d.Name)
		if err := checkV2Input(d, t); err != nil {
			return job{}, errorf(http.StatusBadRequest, "input %q: %v", d.Name, err)
		}
		if j.rows >= 0 && t.Shape[0] != j.rows {
			return job{}, errorf(http.StatusBadRequest, "input %q has %d rows and %q has %d; every input needs the same batch", d.Name, t.Shape[0], decl[0].Name, j.rows)
		}
		j.rows = t.Shape[0]
		j.inputs[i] = t
	}
	for name := range given {
		return job{}, errorf(http.StatusBadRequest, "model %q has no input %q (it takes %s)", m.name, clipName(name), inputNames(decl))
	}
	if j.rows > maxRows {
		return job{}, errorf(http.StatusBadRequest, "the request has %d rows, more than the %d one request may carry; split it", j.rows, maxRows)
	}
	if tok := m.enc.Tokenizer(); tok != nil {
		if err := checkTokens(j.inputs[0], int64(tok.Vocab().Size())); err != nil {
			return job{}, errorf(http.StatusBadRequest, "input %q: %v", decl[0].Name, err)
		}
	}
	return j, nil
}

func inputNames(decl []onnxrt.ValueInfo) string {
	names := make([]string, len(decl))
	for i, d := range decl {
		names[i] = strconv.Quote(d.Name)
	}
	return strings.Join(names, " and ")
}

// checkV2Input says, in the protocol's words, how a tensor differs from
// the input the model declares.
func checkV2Input(d onnxrt.ValueInfo, t *onnxrt.Tensor) error {
	want, _ := kserve.Datatype(d.DType)
	if t.DType != d.DType {
		got, _ := kserve.Datatype(t.DType)
		return fmt.Errorf("datatype %s, but the model takes %s", got, want)
	}
	shape := make([]int64, len(d.Shape))
	for i, n := range d.Shape {
		shape[i] = int64(n)
	}
	ok := len(t.Shape) == len(d.Shape) && len(t.Shape) > 0
	for i := 1; ok && i < len(t.Shape); i++ {
		ok = d.Shape[i] < 0 || d.Shape[i] == t.Shape[i]
	}
	if !ok {
		return fmt.Errorf("shape %v, but the model takes %v (-1: any size)", t.Shape, shape)
	}
	if t.Shape[0] < 1 {
		return fmt.Errorf("shape %v has no rows", t.Shape)
	}
	return nil
}

// checkTokens keeps token ids inside the vocabulary, which the embedding
// lookup would otherwise fail on deep in the engine.
func checkTokens(ids *onnxrt.Tensor, vocab int64) error {
	v, ok := ids.Data.([]int64)
	if !ok {
		return fmt.Errorf("token ids must be INT64")
	}
	for i, id := range v {
		if id < 0 || id >= vocab {
			return fmt.Errorf("token id %d (element %d) is outside the vocabulary of %d", id, i, vocab)
		}
	}
	return nil
}

type v2Output struct {
	name   string
	index  int
	binary bool
}

// v2Outputs resolves the outputs a request asks for (all when it names
// none).
func (m *model) v2Outputs(req *kserve.Request) ([]v2Output, error) {
	decl := m.enc.Engine().Outputs()
	if len(req.Outputs) == 0 {
		out := make([]v2Output, len(decl))
		for i, d := range decl {
			out[i] = v2Output{name: d.Name, index: i, binary: req.BinaryOutput}
		}
		return out, nil
	}
	var out []v2Output
	for _, o := range req.Outputs {
		i := slices.IndexFunc(decl, func(v onnxrt.ValueInfo) bool { return v.Name == o.Name })
		if i < 0 {
			names := make([]string, len(decl))
			for k, d := range decl {
				names[k] = strconv.Quote(d.Name)
			}
			return nil, errorf(http.StatusBadRequest, "model %q has no output %q (it has %s)", m.name, clipName(o.Name), strings.Join(names, ", "))
		}
		out = append(out, v2Output{name: o.Name, index: i, binary: o.Binary})
	}
	return out, nil
}

// engineName says which engine runs a model: "onnxruntime" or "go".
func engineName(e onnxrt.Engine) string {
	if _, ok := e.(*onnxrt.Session); ok {
		return "onnxruntime"
	}
	return "go"
}
