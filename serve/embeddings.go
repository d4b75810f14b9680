package serve

import (
	"net/http"
	"strconv"

	"github.com/sslzoo/sslzoo"
	"github.com/sslzoo/sslzoo/data/preprocess"
	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/serve/openai"
)

// maxImagePixels bounds one decoded image of a request: a small PNG can
// declare a huge canvas, and a request holds many images.
const maxImagePixels = 16 << 20

// embeddings answers POST /v1/embeddings.
func (s *Server) embeddings(w http.ResponseWriter, r *http.Request) error {
	var m *model
	name := func() string {
		if m == nil {
			return ""
		}
		return m.name
	}
	return s.inference(protoOpenAI, name, w, func() error {
		body, err := s.readBody(w, r)
		if err != nil {
			return err
		}
		req, err := openai.DecodeRequest(body)
		if err != nil {
			return errorf(http.StatusBadRequest, "%v", err)
		}
		if m, err = s.openaiModel(req.Model); err != nil {
			return err
		}
		defer s.track(m)()
		if d := m.enc.Dim(); req.Dimensions != 0 && d > 0 && req.Dimensions != d {
			return errorf(http.StatusBadRequest, "dimensions %d: model %q gives %d-d embeddings and cannot shorten them", req.Dimensions, m.name, d)
		}
		if len(req.Inputs) > s.cfg.MaxRows {
			return errorf(http.StatusBadRequest, "the request has %d inputs, more than the %d one request may carry; split it", len(req.Inputs), s.cfg.MaxRows)
		}
		j, tokens, err := m.openaiJob(req.Inputs, s.cfg.BodyLimit)
		if err != nil {
			return err
		}
		res, err := s.submit(r.Context(), m, j)
		if err != nil {
			return err
		}
		rows, err := m.enc.Rows(res, j.rows)
		if err != nil {
			return errorf(http.StatusInternalServerError, "model %q: %v", m.name, err)
		}
		buf, err := openai.AppendResponse(nil, m.name, rows, req.EncodingFormat, tokens)
		if err != nil {
			return errorf(http.StatusInternalServerError, "%v", err)
		}
		writeBody(w, "application/json", buf)
		return nil
	})
}

// openaiModel is the model a request names; a server with one model
// takes requests that name none.
func (s *Server) openaiModel(name string) (*model, error) {
	if name == "" {
		if len(s.names) == 1 {
			return s.models[s.names[0]], nil
		}
		return nil, errorf(http.StatusBadRequest, `the request names no "model" (served: %v)`, s.names)
	}
	return s.lookup(name)
}

// openaiJob prepares a request's inputs as `sslzoo embed` does: texts
// through the model's tokenizer, images decoded from data URLs and
// preprocessed as the model's metadata says. tokens counts the texts'
// tokens (the usage OpenAI reports).
func (m *model) openaiJob(inputs []string, maxBytes int64) (j job, tokens int, err error) {
	if m.enc.Modality() == sslzoo.ModalityText {
		for i, in := range inputs {
			if openai.IsDataURL(in) {
				return job{}, 0, errorf(http.StatusBadRequest, "input[%d] is a data URL, but model %q embeds texts", i, m.name)
			}
		}
		ids, mask, tokens, err := m.enc.TextTensors(inputs)
		if err != nil {
			return job{}, 0, errorf(http.StatusBadRequest, "%v", err)
		}
		return job{inputs: []*onnxrt.Tensor{ids, mask}, rows: len(inputs)}, tokens, nil
	}
	spec := m.enc.Preprocess()
	n := spec.Len()
	x := make([]float32, len(inputs)*n)
	for i, in := range inputs {
		if !openai.IsDataURL(in) {
			return job{}, 0, errorf(http.StatusBadRequest, "input[%d]: model %q embeds images: give each as a data:image/png;base64,... URL", i, m.name)
		}
		_, b, err := openai.ParseDataURL(in, int(maxBytes))
		if err != nil {
			return job{}, 0, errorf(http.StatusBadRequest, "input[%d]: %v", i, err)
		}
		if len(b) == 0 {
			return job{}, 0, errorf(http.StatusBadRequest, "input[%d]: the data URL holds no image bytes", i)
		}
		img, err := preprocess.Decode("input["+strconv.Itoa(i)+"]", b, preprocess.DecodeOptions{MaxPixels: maxImagePixels})
		if err != nil {
			return job{}, 0, errorf(http.StatusBadRequest, "%v", err)
		}
		if err := spec.ApplyInto(x[i*n:(i+1)*n], img); err != nil {
			return job{}, 0, errorf(http.StatusBadRequest, "input[%d]: %v", i, err)
		}
	}
	c, h, w := spec.Shape()
	return job{inputs: []*onnxrt.Tensor{onnxrt.NewTensor([]int{len(inputs), c, h, w}, x)}, rows: len(inputs)}, 0, nil
}
