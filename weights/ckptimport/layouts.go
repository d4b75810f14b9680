package ckptimport

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sslzoo/sslzoo/weights/torchpickle"
)

// selection is where a format found the backbone in a checkpoint, and the
// facts about the model that its weights do not show.
type selection struct {
	from     string         // e.g. `checkpoint["state_dict"]`, for messages
	sd       *stateDict     // the state dict holding the backbone
	prefix   string         // the backbone's key prefix in sd
	backbone map[string]ref // backbone tensors under sslzoo's names
	skipped  []string       // other top-level checkpoint entries
	method   string         // for sslzoo.method ("" when unknown)

	families []string  // backbone families the project publishes
	heads    headsRule // how the project sizes ViT attention
	cifarPad int       // conv1 padding of its 3x3 (CIFAR) stem; 0: sslzoo's 1
}

// layouts are the formats' readers, by --format name.
var layouts = map[string]func(*input) (*selection, error){
	"torchvision": torchvisionLayout,
	"moco-v2":     mocoV2Layout,
	"moco-v3":     mocoV3Layout,
	"swav":        swavLayout,
	"dino":        dinoLayout,
	"mae":         maeLayout,
	"solo-learn":  soloLayout,
}

// pick takes the tensors of sd (the checkpoint itself when key is "", else
// checkpoint[key]) under prefix, leaving out those whose name after the
// prefix starts with one of drop: the projects' own heads.
func pick(in *input, key string, sd *stateDict, prefix string, drop ...string) *selection {
	from := "checkpoint"
	if key != "" {
		from = fmt.Sprintf("checkpoint[%q]", key)
	}
	s := &selection{from: from, sd: sd, prefix: prefix, backbone: map[string]ref{}}
	for _, n := range sd.names {
		rest, ok := strings.CutPrefix(n, prefix)
		if !ok {
			continue
		}
		dropped := false
		for _, d := range drop {
			dropped = dropped || strings.HasPrefix(rest, d)
		}
		if !dropped {
			s.backbone[rest] = sd.refs[n]
		}
	}
	if d, ok := in.root.(*torchpickle.Dict); ok && key != "" {
		for i := range d.Len() {
			if k := fmt.Sprint(d.Key(i)); k != key {
				s.skipped = append(s.skipped, fmt.Sprintf("checkpoint[%q]", k))
			}
		}
	}
	for _, k := range sd.other {
		s.skipped = append(s.skipped, fmt.Sprintf("%s[%q]", from, k))
	}
	return s
}

// subStateDict returns root[key] as a state dict.
func subStateDict(in *input, key string) (*stateDict, error) {
	v, ok := entry(in.root, key)
	if !ok {
		return nil, fmt.Errorf("it has no %q entry", key)
	}
	sd, ok := asStateDict(v)
	if !ok {
		return nil, fmt.Errorf("its %q entry is a %s, not a state_dict", key, describe(v))
	}
	return sd, nil
}

// ddpPrefix is "module." when every name carries it (a checkpoint of a
// DistributedDataParallel-wrapped model), else "".
func ddpPrefix(sd *stateDict) string {
	for _, n := range sd.names {
		if !strings.HasPrefix(n, "module.") {
			return ""
		}
	}
	return "module."
}

// hasBackbone reports whether sd holds a ResNet or ViT under prefix.
func hasBackbone(sd *stateDict, prefix string) bool {
	_, r := sd.refs[prefix+"conv1.weight"]
	_, v := sd.refs[prefix+"patch_embed.proj.weight"]
	return r || v
}

func need(s *selection, what string) (*selection, error) {
	if len(s.backbone) == 0 {
		return nil, fmt.Errorf("no tensors under %q in %s%s", s.prefix, s.from, what)
	}
	return s, nil
}

// torchvision: a plain state_dict of torchvision.models.resnet*; fc is the
// ImageNet classifier (torchvision/models/resnet.py, ResNet.fc).
func torchvisionLayout(in *input) (*selection, error) {
	sd, ok := asStateDict(in.root)
	if !ok {
		return nil, fmt.Errorf("it is not a plain state_dict (torchvision publishes one)")
	}
	s := pick(in, "", sd, ddpPrefix(sd), "fc.")
	s.method, s.families = "supervised", []string{"resnet"}
	return need(s, "")
}

// MoCo v1/v2: {epoch, arch, state_dict, optimizer}; the query encoder is
// module.encoder_q.*, a torchvision ResNet whose fc became the projection
// MLP; main_lincls.py keeps encoder_q up to before fc
// (facebookresearch/moco main_lincls.py, moco/builder.py).
func mocoV2Layout(in *input) (*selection, error) {
	sd, err := subStateDict(in, "state_dict")
	if err != nil {
		return nil, err
	}
	s := pick(in, "state_dict", sd, "module.encoder_q.", "fc.")
	s.method, s.families = "mocov2", []string{"resnet"}
	return need(s, " (MoCo keeps its query encoder there)")
}

// MoCo v3: {epoch, arch, state_dict, optimizer, scaler}; module.base_encoder
// is a torchvision ResNet (head "fc") or a timm ViT (head "head"), next to
// module.momentum_encoder and module.predictor. All its ViTs have 12 heads
// (facebookresearch/moco-v3 main_lincls.py, moco/builder.py, vits.py).
func mocoV3Layout(in *input) (*selection, error) {
	sd, err := subStateDict(in, "state_dict")
	if err != nil {
		return nil, err
	}
	s := pick(in, "state_dict", sd, "module.base_encoder.", "fc.", "head.")
	s.method, s.families = "mocov3", []string{"resnet", "vit"}
	s.heads = headsRule{source: "MoCo v3 (vits.py: vit_small and vit_base have 12 heads)", fixed: 12}
	return need(s, " (MoCo v3 keeps its base encoder there)")
}

// SwAV: a plain state_dict of its ResNet-50 (or -w2/w4/w5) saved under
// DistributedDataParallel (module.), with projection_head and prototypes;
// eval_linear.py also accepts {"state_dict": ...}. Its conv1 pads by 2
// after a ConstantPad2d(1), the same as torchvision's padding 3
// (facebookresearch/swav src/resnet50.py, eval_linear.py, hubconf.py).
func swavLayout(in *input) (*selection, error) {
	key, root := "", in.root
	if v, ok := entry(in.root, "state_dict"); ok {
		key, root = "state_dict", v
	}
	sd, ok := asStateDict(root)
	if !ok {
		return nil, fmt.Errorf("it is not a state_dict (SwAV publishes one, module. prefixed)")
	}
	s := pick(in, key, sd, ddpPrefix(sd), "projection_head.", "prototypes.", "fc.")
	s.method, s.families = "swav", []string{"resnet"}
	return need(s, "")
}

// DINO: a backbone-only state_dict, or a training checkpoint {student,
// teacher, optimizer, epoch, args, dino_loss[, fp16_scaler]} whose models
// are MultiCropWrapper(backbone, head), the student (and a teacher with
// BatchNorm) under DDP. Its evaluation takes the teacher and strips
// "module." and "backbone." (facebookresearch/dino utils.py
// load_pretrained_weights, eval_linear.py --checkpoint_key teacher,
// main_dino.py save_dict, vision_transformer.py vit_tiny/small/base).
func dinoLayout(in *input) (*selection, error) {
	key, root := "", in.root
	if v, ok := entry(in.root, "teacher"); ok {
		key, root = "teacher", v
	}
	sd, ok := asStateDict(root)
	if !ok {
		return nil, fmt.Errorf("it is neither a state_dict nor a dict with a \"teacher\" state_dict")
	}
	prefix := ""
	for _, p := range []string{"module.backbone.", "backbone.", "module.", ""} {
		if hasBackbone(sd, p) {
			prefix = p
			break
		}
	}
	s := pick(in, key, sd, prefix, "head.", "fc.")
	s.method, s.families = "dino", []string{"resnet", "vit"}
	s.heads = headsRule{source: "DINO (vision_transformer.py)", table: map[int]int{192: 3, 384: 6, 768: 12}}
	return need(s, "")
}

// MAE: {model[, optimizer, epoch, scaler, args]}; model is
// MaskedAutoencoderViT's state: timm ViT keys plus mask_token and the
// decoder_* modules, which fine-tuning drops (facebookresearch/mae
// main_finetune.py, models_mae.py mae_vit_base/large/huge, util/misc.py
// save_model).
func maeLayout(in *input) (*selection, error) {
	sd, err := subStateDict(in, "model")
	if err != nil {
		return nil, err
	}
	s := pick(in, "model", sd, "", "decoder_", "mask_token", "head.")
	s.method, s.families = "mae", []string{"vit"}
	s.heads = headsRule{source: "MAE (models_mae.py)", table: map[int]int{768: 12, 1024: 16, 1280: 16}}
	return need(s, "")
}

// solo-learn: a Lightning checkpoint whose state_dict holds backbone.*,
// momentum_backbone.*, projector.*, classifier.*, ... The backbone is
// torchvision's resnet18/50 with fc removed and, for CIFAR, conv1 replaced
// by a 3x3 stride-1 conv with padding 2 and no max pool (solo/methods/base.py
// BaseMethod.__init__, solo/backbones/resnet/resnet.py), or a timm ViT
// whose heads depend on the method (solo/backbones/vit/__init__.py:
// mocov3 and mae use vit_mocov3.py / vit_mae.py).
func soloLayout(in *input) (*selection, error) {
	sd, err := subStateDict(in, "state_dict")
	if err != nil {
		return nil, err
	}
	s := pick(in, "state_dict", sd, "backbone.", "fc.", "head.")
	s.families, s.cifarPad = []string{"resnet", "vit"}, 2
	s.method = soloMethod(in.path)
	tables := map[string]map[int]int{
		"default": {192: 3, 384: 6, 768: 12, 1024: 16},
		"custom":  {192: 12, 384: 12, 768: 12, 1024: 16},
	}
	switch s.method {
	case "mocov3", "mae":
		s.heads = headsRule{source: "solo-learn " + s.method + " (solo/backbones/vit/vit_" + s.method + ".py)", table: tables["custom"]}
	case "":
		s.heads = headsRule{source: "solo-learn (no args.json beside the checkpoint: heads depend on the method)", table: map[int]int{768: 12, 1024: 16},
			ambiguous: "solo-learn's ViT heads depend on the method (mocov3 and mae use 12 for vit_tiny and vit_small); put the run's args.json beside the checkpoint or pass --heads"}
	default:
		s.heads = headsRule{source: "solo-learn (solo/backbones/vit/vit.py)", table: tables["default"]}
	}
	return need(s, " (solo-learn keeps its online backbone there)")
}

// soloMethod reads the method from the args.json solo-learn's Checkpointer
// writes beside its checkpoints (solo/utils/checkpointer.py).
func soloMethod(ckpt string) string {
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(ckpt), "args.json"))
	if err != nil {
		return ""
	}
	var a struct {
		Method string `json:"method"`
	}
	if json.Unmarshal(raw, &a) != nil {
		return ""
	}
	return a.Method
}

// headsRule is how a project sizes ViT attention: a fixed count, or a table
// of its published widths.
type headsRule struct {
	source    string
	fixed     int
	table     map[int]int
	ambiguous string // why a width missing from table cannot be settled
}

// heads returns the count for a ViT of width dim, or 0 when the project
// does not settle it.
func (h headsRule) lookup(dim int) int {
	if h.fixed > 0 {
		return h.fixed
	}
	return h.table[dim]
}

func (h headsRule) explain(dim int) string {
	if h.ambiguous != "" {
		return h.ambiguous
	}
	var sizes []string
	for _, d := range sortedInts(h.table) {
		sizes = append(sizes, fmt.Sprintf("%d (%d heads)", d, h.table[d]))
	}
	return fmt.Sprintf("%s publishes ViTs of width %s only, so the attention heads of a width-%d ViT are unknown; pass --heads",
		h.source, strings.Join(sizes, ", "), dim)
}
