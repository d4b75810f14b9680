package nn

import (
	"fmt"
	"math"

	"github.com/sslzoo/sslzoo/tensor"
)

// WarmupCosine is the learning rate at step (counted from 0) of a linear
// warmup from 0 to baseLR over warmupSteps, followed by a half-cosine decay
// from baseLR to finalLR at totalSteps; from totalSteps on it stays at
// finalLR. This is the SimCLR, BYOL, MoCo v3 and MAE schedule (their warmup
// also starts at lr*step/warmup, i.e. 0 at step 0).
func WarmupCosine(step, warmupSteps, totalSteps int, baseLR, finalLR float64) float64 {
	if step < warmupSteps {
		return baseLR * float64(step) / float64(warmupSteps)
	}
	if step >= totalSteps {
		return finalLR
	}
	progress := float64(step-warmupSteps) / float64(totalSteps-warmupSteps)
	return finalLR + (baseLR-finalLR)*0.5*(1+math.Cos(math.Pi*progress))
}

// CosineMomentum is BYOL's target-network momentum at step k of K:
// m = 1 - (1-base)*(cos(pi*k/K)+1)/2, rising from base at k=0 to 1 at k=K.
func CosineMomentum(k, K int, base float64) float64 {
	if K <= 0 || k >= K {
		return 1
	}
	return 1 - (1-base)*(math.Cos(math.Pi*float64(k)/float64(K))+1)/2
}

// EMA keeps a target network as an exponential moving average of an online
// one (BYOL, MoCo, DINO-style teachers): every parameter becomes
// m*target + (1-m)*online, and every buffer (BatchNorm running statistics,
// counters) is copied from the online network, so the target's normalisation
// tracks the data the online network sees.
type EMA struct {
	// Base is the momentum at step 0 (BYOL: 0.996; MoCo: 0.999 constant).
	Base float64
	// TotalSteps is K in the cosine schedule; 0 keeps the momentum at Base.
	TotalSteps int

	online, target *State
}

// NewEMA pairs an online and a target module, which must have the same
// parameter and buffer names and shapes. It does not copy the weights: call
// CopyState(target, online) first if the target should start as a copy.
func NewEMA(online, target Module, base float64, totalSteps int) (*EMA, error) {
	on, tg := StateOf(online), StateOf(target)
	if len(on.Params) != len(tg.Params) || len(on.Buffers) != len(tg.Buffers) {
		return nil, fmt.Errorf("ema: online has %d params and %d buffers, target %d and %d",
			len(on.Params), len(on.Buffers), len(tg.Params), len(tg.Buffers))
	}
	for i, p := range on.Params {
		q := tg.Params[i]
		if p.Name != q.Name || !tensor.SameShape(p.Var.Value.Shape, q.Var.Value.Shape) {
			return nil, fmt.Errorf("ema: online param %s %v does not match target param %s %v",
				p.Name, p.Var.Value.Shape, q.Name, q.Var.Value.Shape)
		}
	}
	for i, b := range on.Buffers {
		c := tg.Buffers[i]
		if b.Name != c.Name || (b.Count == nil) != (c.Count == nil) ||
			(b.T != nil && !tensor.SameShape(b.T.Shape, c.T.Shape)) {
			return nil, fmt.Errorf("ema: online buffer %s does not match target buffer %s", b.Name, c.Name)
		}
	}
	return &EMA{Base: base, TotalSteps: totalSteps, online: on, target: tg}, nil
}

// Momentum is the momentum used at step k.
func (e *EMA) Momentum(k int) float64 {
	if e.TotalSteps == 0 {
		return e.Base
	}
	return CosineMomentum(k, e.TotalSteps, e.Base)
}

// Update moves the target towards the online network with the momentum of
// step k and returns that momentum.
func (e *EMA) Update(k int) float64 {
	m := e.Momentum(k)
	e.UpdateWith(m)
	return m
}

// UpdateWith moves the target with momentum m: target = m*target +
// (1-m)*online for parameters, target = online for buffers.
func (e *EMA) UpdateWith(m float64) {
	mf, rf := float32(m), float32(1-m)
	for i, p := range e.online.Params {
		t, o := e.target.Params[i].Var.Value.Data, p.Var.Value.Data
		tensor.Parallel(len(t), 3, func(lo, hi int) {
			for j := lo; j < hi; j++ {
				t[j] = mf*t[j] + rf*o[j]
			}
		})
	}
	for i, b := range e.online.Buffers {
		c := e.target.Buffers[i]
		if b.Count != nil {
			*c.Count = *b.Count
		} else {
			copy(c.T.Data, b.T.Data)
		}
	}
}
