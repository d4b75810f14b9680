package torchpickle

import (
	"fmt"
	"strings"

	"github.com/sslzoo/sslzoo/weights"
)

// globalKind says how the unpickler treats an allowed global.
type globalKind int

const (
	// kindInert globals are recorded, never called: calling one (REDUCE,
	// NEWOBJ, INST, OBJ) yields an *Object holding its arguments.
	kindInert globalKind = iota
	kindRebuildTensor
	kindRebuildParameter
	kindRebuildFromType
	kindStorage
	kindDict // dict, OrderedDict, defaultdict, Counter: a *Dict
	kindSet
	kindFrozenSet
	kindCodecsEncode
	kindReconstructor
	kindSize
	kindByteArray
)

// storageType is one of torch's typed storage classes.
type storageType struct {
	name     string        // "FloatStorage"
	dtype    weights.DType // "" when sslzoo has no such dtype (complex, quantized)
	elemSize int
}

var storageTypes = map[string]storageType{}

func init() {
	for _, s := range []storageType{
		{"FloatStorage", weights.F32, 4},
		{"DoubleStorage", weights.F64, 8},
		{"HalfStorage", weights.F16, 2},
		{"BFloat16Storage", weights.BF16, 2},
		{"LongStorage", weights.I64, 8},
		{"IntStorage", weights.I32, 4},
		{"ShortStorage", weights.I16, 2},
		{"CharStorage", weights.I8, 1},
		{"ByteStorage", weights.U8, 1},
		{"BoolStorage", weights.BOOL, 1},
		{"UntypedStorage", weights.U8, 1},
		{"ComplexFloatStorage", "", 8},
		{"ComplexDoubleStorage", "", 16},
		{"QInt8Storage", "", 1},
		{"QUInt8Storage", "", 1},
		{"QInt32Storage", "", 4},
		{"QUInt4x2Storage", "", 1},
		{"QUInt2x4Storage", "", 1},
	} {
		storageTypes[s.name] = s
	}
}

// allowed lists the globals a checkpoint may name: what
// torch.load(weights_only=True) accepts (torch 1.13,
// torch/_weights_only_unpickler.py: the rebuild functions, storages,
// dtypes, OrderedDict, Size, Tensor, Parameter), plus the plain-data
// classes that real training checkpoints carry next to their state dicts:
// argparse.Namespace (DINO, MoCo, MAE "args"), OmegaConf configs and
// Lightning's AttributeDict (Lightning "hyper_parameters"), numpy scalars
// and arrays (metrics), sets, paths and dates. Those become inert Objects.
var allowed = map[string]globalKind{
	"torch._utils._rebuild_tensor":                      kindRebuildTensor,
	"torch._utils._rebuild_tensor_v2":                   kindRebuildTensor,
	"torch._utils._rebuild_parameter":                   kindRebuildParameter,
	"torch._utils._rebuild_parameter_with_state":        kindRebuildParameter,
	"torch._tensor._rebuild_from_type_v2":               kindRebuildFromType,
	"torch._utils._rebuild_from_type_v2":                kindRebuildFromType,
	"torch.Size":                                        kindSize,
	"collections.OrderedDict":                           kindDict,
	"collections.defaultdict":                           kindDict,
	"collections.Counter":                               kindDict,
	"builtins.dict":                                     kindDict,
	"builtins.set":                                      kindSet,
	"builtins.frozenset":                                kindFrozenSet,
	"_codecs.encode":                                    kindCodecsEncode,
	"copyreg._reconstructor":                            kindReconstructor,
	"torch._utils._rebuild_sparse_tensor":               kindInert,
	"torch._utils._rebuild_sparse_csr_tensor":           kindInert,
	"torch._utils._rebuild_meta_tensor_no_storage":      kindInert,
	"torch._utils._rebuild_qtensor":                     kindInert,
	"torch._utils._rebuild_device_tensor_from_numpy":    kindInert,
	"torch._tensor._rebuild_from_type":                  kindInert,
	"torch.serialization._get_layout":                   kindInert,
	"torch.Tensor":                                      kindInert,
	"torch.nn.parameter.Parameter":                      kindInert,
	"torch.device":                                      kindInert,
	"torch.strided":                                     kindInert,
	"torch.contiguous_format":                           kindInert,
	"torch.channels_last":                               kindInert,
	"torch.preserve_format":                             kindInert,
	"builtins.object":                                   kindInert,
	"builtins.slice":                                    kindInert,
	"builtins.complex":                                  kindInert,
	"builtins.bytearray":                                kindByteArray,
	"builtins.range":                                    kindInert,
	"builtins.int":                                      kindInert,
	"builtins.float":                                    kindInert,
	"builtins.str":                                      kindInert,
	"builtins.bool":                                     kindInert,
	"builtins.bytes":                                    kindInert,
	"builtins.tuple":                                    kindInert,
	"builtins.list":                                     kindInert,
	"collections.deque":                                 kindInert,
	"argparse.Namespace":                                kindInert,
	"numpy.core.multiarray.scalar":                      kindInert,
	"numpy.core.multiarray._reconstruct":                kindInert,
	"numpy._core.multiarray.scalar":                     kindInert,
	"numpy._core.multiarray._reconstruct":               kindInert,
	"numpy.ndarray":                                     kindInert,
	"numpy.dtype":                                       kindInert,
	"omegaconf.dictconfig.DictConfig":                   kindInert,
	"omegaconf.listconfig.ListConfig":                   kindInert,
	"omegaconf.base.ContainerMetadata":                  kindInert,
	"omegaconf.base.Metadata":                           kindInert,
	"omegaconf.nodes.AnyNode":                           kindInert,
	"omegaconf.nodes.StringNode":                        kindInert,
	"omegaconf.nodes.IntegerNode":                       kindInert,
	"omegaconf.nodes.FloatNode":                         kindInert,
	"omegaconf.nodes.BooleanNode":                       kindInert,
	"omegaconf.nodes.BytesNode":                         kindInert,
	"omegaconf.nodes.PathNode":                          kindInert,
	"omegaconf.nodes.EnumNode":                          kindInert,
	"typing.Any":                                        kindInert,
	"typing.Dict":                                       kindInert,
	"typing.List":                                       kindInert,
	"typing.Tuple":                                      kindInert,
	"typing.Optional":                                   kindInert,
	"typing.Union":                                      kindInert,
	"pytorch_lightning.utilities.parsing.AttributeDict": kindInert,
	"lightning_fabric.utilities.data.AttributeDict":     kindInert,
	"lightning.fabric.utilities.data.AttributeDict":     kindInert,
	"pathlib.PosixPath":                                 kindInert,
	"pathlib.WindowsPath":                               kindInert,
	"pathlib.PurePosixPath":                             kindInert,
	"pathlib.PureWindowsPath":                           kindInert,
	"datetime.datetime":                                 kindInert,
	"datetime.date":                                     kindInert,
	"datetime.timedelta":                                kindInert,
}

// torchDTypes are the dtype singletons (torch.float32 pickles as the
// global "torch.float32").
var torchDTypes = []string{
	"float16", "float32", "float64", "bfloat16", "half", "float", "double",
	"complex32", "complex64", "complex128", "uint8", "int8", "int16", "int32", "int64", "bool",
	"long", "int", "short",
}

// moduleAliases are Python 2 module names that Python 3's unpickler maps
// on load (fix_imports, Lib/_compat_pickle.py IMPORT_MAPPING; a protocol 2
// pickle of subprocess.Popen names "commands"), and torch's own rename of
// torch.tensor.
var moduleAliases = map[string]string{
	"__builtin__":  "builtins",
	"copy_reg":     "copyreg",
	"commands":     "subprocess",
	"cPickle":      "pickle",
	"torch.tensor": "torch._tensor",
}

// codeModules are modules whose names in a pickle mean code execution, for
// a sharper refusal message.
var codeModules = []string{
	"os", "posix", "nt", "subprocess", "sys", "builtins", "shutil", "socket", "runpy",
	"importlib", "pickle", "marshal", "ctypes", "pty", "code", "commands", "webbrowser",
}

// resolve maps a pickle's global to an allowed *Global, or refuses it
// naming the global. Nothing is imported.
func resolve(module, name string) (*Global, error) {
	if a, ok := moduleAliases[module]; ok {
		module = a
	}
	full := module + "." + name
	if k, ok := allowed[full]; ok {
		return &Global{Module: module, Name: name, kind: k}, nil
	}
	// torch's own loader accepts any storage class by name, CUDA ones
	// included (torch.cuda.FloatStorage in files saved from a GPU).
	if module == "torch" || module == "torch.cuda" {
		if st, ok := storageTypes[name]; ok {
			return &Global{Module: module, Name: name, kind: kindStorage, storage: &st}, nil
		}
	}
	if module == "torch" {
		for _, d := range torchDTypes {
			if name == d {
				return &Global{Module: module, Name: name, kind: kindInert}, nil
			}
		}
	}
	return nil, &RefusedError{Global: full}
}

// RefusedError reports a global that is not on the allowlist. The pickle
// stops there; nothing it names is ever imported or run.
type RefusedError struct{ Global string }

func (e *RefusedError) Error() string {
	top := e.Global
	if i := strings.IndexByte(top, '.'); i >= 0 {
		top = top[:i]
	}
	why := "it is not a tensor or plain-data type"
	for _, m := range codeModules {
		if top == m {
			why = "it can run code"
			break
		}
	}
	return fmt.Sprintf("refused global %s: %s (only the globals of torch.load(weights_only=True) and plain data are allowed; nothing in the file was run; a whole pickled module, torch.save(model), must be re-saved as its state_dict)", odd(e.Global), why)
}
