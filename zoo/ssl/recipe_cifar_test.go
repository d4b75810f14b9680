package ssl

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// The CIFAR recipes build working methods, and the prototype freeze and
// SwAV queue follow the run length as documented.
func TestCIFARRecipes(t *testing.T) {
	const spe = 40
	rng := rand.New(rand.NewPCG(1, 2))
	enc := tinyResNet(t, 3)

	simclr := DefaultSimCLRConfig(testBatch, spe, 1)
	simclr.UseCIFARRecipe(testBatch, spe, 1)
	if _, err := NewSimCLR(simclr, enc, rng); err != nil || simclr.Temperature != 0.2 || !simclr.Optim.ClipTrustRatio {
		t.Fatalf("simclr %+v: %v", simclr, err)
	}
	moco := DefaultMoCoV2Config(testBatch, spe, 1)
	moco.QueueSize = 64
	moco.UseCIFARRecipe(testBatch, spe, 1)
	if _, err := NewMoCoV2(moco, enc, rng); err != nil || moco.Momentum != 0.999 || moco.Optim.LR != 0.3*testBatch/256 || moco.QueueSize != 64 {
		t.Fatalf("mocov2 %+v: %v", moco, err)
	}
	v3 := DefaultMoCoV3Config(enc, testBatch, spe, 1)
	if err := v3.UseCIFARRecipe(enc, testBatch, spe, 1); err != nil || v3.Temperature != 0.2 {
		t.Fatalf("mocov3 %+v: %v", v3, err)
	}
	if _, err := NewMoCoV3(v3, enc, rng); err != nil {
		t.Fatal(err)
	}
	byol := DefaultBYOLConfig(testBatch, spe, 1)
	byol.UseCIFARRecipe(testBatch, spe, 1)
	if _, err := NewBYOL(byol, enc, rng); err != nil || byol.BaseMomentum != 0.99 || byol.Optim.WeightDecay != 1e-5 {
		t.Fatalf("byol %+v: %v", byol, err)
	}
	barlow := DefaultBarlowConfig(testBatch, spe, 1)
	barlow.UseCIFARRecipe(testBatch, spe, 1)
	if _, err := NewBarlow(barlow, enc, rng); err != nil || barlow.ProjDim != 2048 || barlow.Scale != 0.1 || !barlow.Optim.ClipTrustRatio {
		t.Fatalf("barlow %+v: %v", barlow, err)
	}
	vicreg := DefaultVICRegConfig(testBatch, spe, 1)
	vicreg.UseCIFARRecipe(testBatch, spe, 1)
	if _, err := NewVICReg(vicreg, enc, rng); err != nil || vicreg.ProjHidden != 2048 || vicreg.Loss != DefaultVICRegLoss || vicreg.Optim.WeightDecay != 1e-4 {
		t.Fatalf("vicreg %+v: %v", vicreg, err)
	}
	dino := DefaultDINOConfig(enc, testBatch, spe, 1)
	if err := dino.UseCIFARRecipe(enc, testBatch, spe, 1); err != nil || dino.Prototypes != 4096 || dino.BaseMomentum != 0.9995 ||
		dino.Optim.Name != "lars" || dino.FinalWeightDecay != 1e-6 || dino.Optim.WeightDecay != 1e-6 {
		t.Fatalf("dino %+v: %v", dino, err)
	}
	dino.HeadHidden, dino.Prototypes = 64, 128
	if _, err := NewDINO(dino, enc, rng); err != nil {
		t.Fatal(err)
	}
	if err := dino.UseCIFARRecipe(newTinyViT(t, 3), testBatch, spe, 1); err == nil {
		t.Error("dino cifar recipe on a ViT: no error")
	}
	simsiam := DefaultSimSiamConfig(testBatch, spe, 1)
	simsiam.UseCIFARRecipe(testBatch, spe, 1)
	if _, err := NewSimSiam(simsiam, enc, rng); err != nil || simsiam.ProjLayers != 2 || simsiam.Optim.LR != 0.5*testBatch/256 || simsiam.Optim.WeightDecay != 1e-5 {
		t.Fatalf("simsiam %+v: %v", simsiam, err)
	}

	for _, c := range []struct {
		epochs, freeze, queue, queueStart int
		cifar                             bool
	}{
		{1, spe / 10, 0, 0, false},          // a tenth of a one-epoch run, not all of it
		{1, spe / 10, 0, 0, true},           //
		{100, spe, 0, 0, false},             // the paper: one epoch
		{40, 2 * spe, 0, 0, true},           // solo-learn: two epochs, no queue yet
		{60, 2 * spe, 3840, 50 * spe, true}, // the queue starts at epoch 50
	} {
		cfg := DefaultSwAVConfig(testBatch, spe, c.epochs)
		if c.cifar {
			cfg.UseCIFARRecipe(testBatch, spe, c.epochs)
		}
		if cfg.FreezePrototypesSteps != c.freeze || cfg.QueueLength != c.queue || cfg.QueueStartStep != c.queueStart {
			t.Errorf("swav %d epochs (cifar %v): freeze %d, queue %d from %d; want %d, %d from %d", c.epochs, c.cifar,
				cfg.FreezePrototypesSteps, cfg.QueueLength, cfg.QueueStartStep, c.freeze, c.queue, c.queueStart)
		}
	}
}

// A ViT has no CIFAR MoCo v3 recipe here.
func TestCIFARRecipeMoCoV3RejectsViT(t *testing.T) {
	vit := newTinyViT(t, 5)
	cfg := DefaultMoCoV3Config(vit, testBatch, 10, 1)
	if err := cfg.UseCIFARRecipe(vit, testBatch, 10, 1); err == nil || !strings.Contains(err.Error(), "ResNets") {
		t.Fatalf("err %v", err)
	}
}
