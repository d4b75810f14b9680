package sslzoo

import (
	"context"
	"errors"
	"fmt"
	"image"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/export"
	"github.com/sslzoo/sslzoo/export/onnxpb"
	"github.com/sslzoo/sslzoo/export/quantize"
	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/zoo"
)

// DefaultCalibrationImages is how many images calibrate an int8 export.
const DefaultCalibrationImages = 256

// calibrationBatch is the images per calibration run.
const calibrationBatch = 64

// Int8Options shape an int8 (QDQ) export.
type Int8Options struct {
	// Calibrate is the number of images whose activations set the
	// quantization ranges: the first ones of the data set's training
	// split; 0 means DefaultCalibrationImages.
	Calibrate int
	// Data is the calibration data set as data.Open takes it; "" means the
	// entry's own (the one its metric is measured on).
	Data string
}

// Int8Result says what an int8 export did.
type Int8Result struct {
	Nodes  int    // Conv, MatMul and Gemm nodes quantized
	Images int    // calibration images
	Data   string // their data set
}

// ExportInt8 writes a zoo entry's backbone (opts.Entry, weights pulled) as a
// QDQ int8 ONNX model, atomically: weights per output channel, activations
// calibrated on images of the data set preprocessed as the entry says (see
// export/quantize).
func ExportInt8(ctx context.Context, weights, out string, opts ExportOptions, qo Int8Options) (Int8Result, error) {
	var res Int8Result
	e := opts.Entry
	switch {
	case e == nil:
		return res, errors.New("int8 export calibrates on a zoo entry's data set; name a zoo entry")
	case e.Modality != "image":
		return res, fmt.Errorf("int8 export calibrates image models only; %s is a %s model", e.Name, e.Modality)
	case opts.RawPixels:
		return res, errors.New("int8 export of a raw-pixels graph is not supported; leave out --raw-pixels")
	case qo.Calibrate < 0:
		return res, fmt.Errorf("calibration images %d: want at least 1", qo.Calibrate)
	}
	if qo.Calibrate == 0 {
		qo.Calibrate = DefaultCalibrationImages
	}
	if res.Data = qo.Data; res.Data == "" {
		res.Data = entryDataset(*e)
	}
	m, err := exportModel(weights, opts)
	if err != nil {
		return res, err
	}
	if _, err := quantize.Tensors(m); err != nil {
		return res, fmt.Errorf("%s: %w", e.Name, err)
	}
	pre, err := parsePreprocess(metadata(m, "sslzoo.preprocess"))
	if err != nil {
		return res, fmt.Errorf("%s: %w", e.Name, err)
	}
	if res.Data == "" {
		return res, fmt.Errorf("%s names no data set to calibrate on", e.Name)
	}
	ds, err := data.Open(ctx, res.Data, data.OpenOptions{Train: true})
	if err != nil {
		return res, fmt.Errorf("calibration set: %w", err)
	}
	imgs, ok := ds.(interface {
		Image(i int) (image.Image, error)
	})
	if !ok {
		return res, fmt.Errorf("calibration set %s: only in-memory data sets (%s) can calibrate", res.Data, "fashion-mnist, mnist, cifar10, cifar100")
	}
	res.Images = min(qo.Calibrate, ds.Len())
	batches := func(yield func([]*onnxrt.Tensor, error) bool) {
		n := pre.Len()
		c, h, w := pre.Shape()
		for lo := 0; lo < res.Images; lo += calibrationBatch {
			hi := min(lo+calibrationBatch, res.Images)
			x := make([]float32, (hi-lo)*n)
			for i := lo; i < hi; i++ {
				img, err := imgs.Image(i)
				if err == nil {
					err = pre.ApplyInto(x[(i-lo)*n:(i-lo+1)*n], img)
				}
				if err != nil {
					yield(nil, fmt.Errorf("image %d: %w", i, err))
					return
				}
			}
			if !yield([]*onnxrt.Tensor{onnxrt.NewTensor([]int{hi - lo, c, h, w}, x)}, nil) {
				return
			}
		}
	}
	q, err := quantize.Quantize(m, batches)
	if errors.Is(err, quantize.ErrNoCalibrationData) {
		return res, fmt.Errorf("calibration set %s is empty", res.Data)
	}
	if err != nil {
		return res, err
	}
	for _, n := range q.GetGraph().GetNode() {
		if n.GetOpType() == "Conv" || n.GetOpType() == "MatMul" || n.GetOpType() == "Gemm" {
			res.Nodes++
		}
	}
	q.MetadataProps = append(q.MetadataProps, &onnxpb.StringStringEntryProto{Key: proto.String("sslzoo.quantization"),
		Value: proto.String(fmt.Sprintf("int8 QDQ: static, weights per channel, activations per tensor calibrated on %d images of %s", res.Images, res.Data))})
	return res, export.Save(q, out, export.SaveOptions{})
}

// entryDataset is the data set an entry is measured on, else the one its
// recipe trained on.
func entryDataset(e zoo.Entry) string {
	if len(e.Metrics) > 0 && e.Metrics[0].Dataset != "" {
		return e.Metrics[0].Dataset
	}
	if e.Recipe != nil {
		f := strings.Fields(e.Recipe.Command)
		for i, a := range f {
			if a == "--data" && i+1 < len(f) {
				return f[i+1]
			}
		}
	}
	return ""
}

func metadata(m *onnxpb.ModelProto, key string) string {
	for _, p := range m.GetMetadataProps() {
		if p.GetKey() == key {
			return p.GetValue()
		}
	}
	return ""
}
