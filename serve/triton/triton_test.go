package triton

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/sslzoo/sslzoo/onnxrt"
)

// modelConfigDescriptor describes the ModelConfig fields Text writes, with
// the names, numbers and types of Triton's model_config.proto (package
// inference), so that prototext parses config.pbtxt as Triton would and
// refuses any field or enum value Triton does not have.
func modelConfigDescriptor(t *testing.T) protoreflect.MessageDescriptor {
	t.Helper()
	type fd = descriptorpb.FieldDescriptorProto
	field := func(name string, num int32, typ descriptorpb.FieldDescriptorProto_Type, repeated bool, typeName string) *fd {
		label := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
		if repeated {
			label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED
		}
		f := &fd{Name: proto.String(name), Number: proto.Int32(num), Type: typ.Enum(), Label: label.Enum(), JsonName: proto.String(name)}
		if typeName != "" {
			f.TypeName = proto.String(typeName)
		}
		return f
	}
	const (
		str  = descriptorpb.FieldDescriptorProto_TYPE_STRING
		i32  = descriptorpb.FieldDescriptorProto_TYPE_INT32
		i64  = descriptorpb.FieldDescriptorProto_TYPE_INT64
		u64  = descriptorpb.FieldDescriptorProto_TYPE_UINT64
		enum = descriptorpb.FieldDescriptorProto_TYPE_ENUM
		msg  = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
	)
	values := func(names ...string) []*descriptorpb.EnumValueDescriptorProto {
		var out []*descriptorpb.EnumValueDescriptorProto
		for i, n := range names {
			out = append(out, &descriptorpb.EnumValueDescriptorProto{Name: proto.String(n), Number: proto.Int32(int32(i))})
		}
		return out
	}
	file := &descriptorpb.FileDescriptorProto{
		Name: proto.String("model_config_subset.proto"), Package: proto.String("inference"), Syntax: proto.String("proto3"),
		EnumType: []*descriptorpb.EnumDescriptorProto{{Name: proto.String("DataType"), Value: values(
			"TYPE_INVALID", "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32", "TYPE_UINT64", "TYPE_INT8", "TYPE_INT16",
			"TYPE_INT32", "TYPE_INT64", "TYPE_FP16", "TYPE_FP32", "TYPE_FP64", "TYPE_STRING", "TYPE_BF16")}},
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("ModelInstanceGroup"),
				EnumType: []*descriptorpb.EnumDescriptorProto{{Name: proto.String("Kind"), Value: values("KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL")}},
				Field:    []*fd{field("name", 1, str, false, ""), field("count", 2, i32, false, ""), field("kind", 4, enum, false, ".inference.ModelInstanceGroup.Kind")}},
			{Name: proto.String("ModelInput"), Field: []*fd{field("name", 1, str, false, ""), field("data_type", 2, enum, false, ".inference.DataType"), field("dims", 4, i64, true, "")}},
			{Name: proto.String("ModelOutput"), Field: []*fd{field("name", 1, str, false, ""), field("data_type", 2, enum, false, ".inference.DataType"), field("dims", 3, i64, true, "")}},
			{Name: proto.String("ModelDynamicBatching"), Field: []*fd{field("preferred_batch_size", 1, i32, true, ""), field("max_queue_delay_microseconds", 2, u64, false, "")}},
			{Name: proto.String("ModelParameter"), Field: []*fd{field("string_value", 1, str, false, "")}},
			{Name: proto.String("ModelConfig"),
				Field: []*fd{
					field("name", 1, str, false, ""), field("platform", 2, str, false, ""), field("max_batch_size", 4, i32, false, ""),
					field("input", 5, msg, true, ".inference.ModelInput"), field("output", 6, msg, true, ".inference.ModelOutput"),
					field("instance_group", 7, msg, true, ".inference.ModelInstanceGroup"),
					field("dynamic_batching", 11, msg, false, ".inference.ModelDynamicBatching"),
					field("parameters", 14, msg, true, ".inference.ModelConfig.ParametersEntry"),
				},
				NestedType: []*descriptorpb.DescriptorProto{{
					Name:    proto.String("ParametersEntry"),
					Field:   []*fd{field("key", 1, str, false, ""), field("value", 2, msg, false, ".inference.ModelParameter")},
					Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
				}}},
		},
	}
	f, err := protodesc.NewFile(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f.Messages().ByName("ModelConfig")
}

func imageModel() *onnxrt.ModelInfo {
	return &onnxrt.ModelInfo{
		Inputs:  []onnxrt.ValueInfo{{Name: "pixel_values", Kind: "tensor", DType: onnxrt.Float32, Shape: []int{-1, 1, 28, 28}, DimParams: []string{"batch", "", "", ""}}},
		Outputs: []onnxrt.ValueInfo{{Name: "embedding", Kind: "tensor", DType: onnxrt.Float32, Shape: []int{-1, 512}, DimParams: []string{"batch", ""}}},
		Metadata: map[string]string{
			"sslzoo.preprocess": `{"channels":"L","size":[28,28],"mean":[0.2860],"std":[0.3530]}`,
			"sslzoo.name":       "simclr-resnet18-fmnist",
			"producer_note":     "left out: not ours",
			"sslzoo.odd":        "tab\tünïcode\\",
		},
	}
}

// The written config parses as Triton's ModelConfig and says what the
// model is: dims without the batch axis, the types, the batcher, a CPU
// instance group, and the sslzoo metadata as parameters, byte for byte.
func TestConfigParsesAsModelConfig(t *testing.T) {
	info := imageModel()
	c, err := ConfigFor("simclr-resnet18-fmnist", info, Options{MaxBatchSize: 64, MaxQueueDelay: 500 * time.Microsecond, Instances: 2})
	if err != nil {
		t.Fatal(err)
	}
	m := dynamicpb.NewMessage(modelConfigDescriptor(t))
	if err := prototext.Unmarshal([]byte(c.Text()), m); err != nil {
		t.Fatalf("config.pbtxt does not parse as ModelConfig: %v\n%s", err, c.Text())
	}
	// The same config as Triton's docs would write it by hand.
	want := dynamicpb.NewMessage(m.Descriptor())
	err = prototext.Unmarshal([]byte(`
		name: "simclr-resnet18-fmnist"  platform: "onnxruntime_onnx"  max_batch_size: 64
		input { name: "pixel_values" data_type: TYPE_FP32 dims: [1, 28, 28] }
		output { name: "embedding" data_type: TYPE_FP32 dims: 512 }
		instance_group { count: 2 kind: KIND_CPU }
		dynamic_batching { max_queue_delay_microseconds: 500 }`), want)
	if err != nil {
		t.Fatal(err)
	}
	params := m.Get(m.Descriptor().Fields().ByName("parameters")).Map()
	withoutParams := proto.Clone(m)
	withoutParams.ProtoReflect().Clear(m.Descriptor().Fields().ByName("parameters"))
	if !proto.Equal(withoutParams, want) {
		t.Errorf("parsed config\n%v\nwant\n%v", withoutParams, want)
	}
	if params.Len() != 3 {
		t.Errorf("%d parameters, want the 3 sslzoo.* metadata keys", params.Len())
	}
	for k, v := range info.Metadata {
		pv := params.Get(protoreflect.ValueOfString(k).MapKey())
		has := pv.IsValid()
		if strings.HasPrefix(k, "sslzoo.") != has {
			t.Errorf("parameter %q present %v", k, has)
			continue
		}
		if has {
			p := pv.Message()
			if s := p.Get(p.Descriptor().Fields().ByName("string_value")).String(); s != v {
				t.Errorf("parameter %q = %q, want %q", k, s, v)
			}
		}
	}
}

func TestConfigForDefaultsAndTypes(t *testing.T) {
	info := &onnxrt.ModelInfo{
		Inputs: []onnxrt.ValueInfo{
			{Name: "input_ids", Kind: "tensor", DType: onnxrt.Int64, Shape: []int{-1, 128}},
			{Name: "attention_mask", Kind: "tensor", DType: onnxrt.Int64, Shape: []int{-1, -1}},
		},
		Outputs: []onnxrt.ValueInfo{{Name: "embedding", Kind: "tensor", DType: onnxrt.Float32, Shape: []int{-1, 256}}},
	}
	c, err := ConfigFor("bert", info, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxBatchSize != DefaultMaxBatchSize || c.Instances != 1 || c.MaxQueueDelay != 0 {
		t.Errorf("defaults %+v", c)
	}
	if in := c.Inputs[1]; in.DataType != "TYPE_INT64" || len(in.Dims) != 1 || in.Dims[0] != -1 {
		t.Errorf("attention_mask %+v", in)
	}
	m := dynamicpb.NewMessage(modelConfigDescriptor(t))
	if err := prototext.Unmarshal([]byte(c.Text()), m); err != nil {
		t.Fatalf("%v\n%s", err, c.Text())
	}
}

func TestConfigForRefuses(t *testing.T) {
	fixed := imageModel()
	fixed.Inputs[0].Shape = []int{8, 1, 28, 28}
	for _, tc := range []struct {
		name string
		info *onnxrt.ModelInfo
		o    Options
		want string
	}{
		{"../up", imageModel(), Options{}, "plain folder name"},
		{"", imageModel(), Options{}, "plain folder name"},
		{"m", fixed, Options{}, "no free batch axis"},
		{"m", imageModel(), Options{MaxBatchSize: -1}, "must not be negative"},
		{"m", &onnxrt.ModelInfo{Outputs: imageModel().Outputs}, Options{}, "no inputs"},
	} {
		if _, err := ConfigFor(tc.name, tc.info, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}
