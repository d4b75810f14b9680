package ssl

import (
	"fmt"
	"math/bits"
)

// JigsawTiles is the number of tiles of a Jigsaw puzzle, a 3x3 grid.
const JigsawTiles = 9

// NumTilePermutations is 9!, the number of orders of the nine tiles.
const NumTilePermutations = 362880

// MaxJigsawPermutations caps the permutation set: the greedy selection
// costs one pass over the 9! permutations per chosen one, and the paper's
// sets stop at 1000.
const MaxJigsawPermutations = 10000

// MaxHammingPermutations chooses n permutations of the nine tiles that lie
// far apart in Hamming distance (the number of positions where two
// permutations differ), greedily: the first is the permutation of
// lexicographic index start among the 9! (itertools.permutations order);
// each next one is the permutation whose minimum distance to those chosen
// so far is largest, the lowest lexicographic index winning a tie. The
// result is deterministic for a given n and start; scripts/gen_jigsaw_golden.py
// implements the same rule and testdata/jigsaw_golden.json holds its sets.
//
// The rule is max-min (farthest-point) selection, which maximises the
// set's minimum distance. The paper's Algorithm 1 ranks candidates by the
// sum of their distances to the chosen set instead, which maximises the
// average distance but can leave two chosen permutations 2 apart.
func MaxHammingPermutations(n, start int) ([][JigsawTiles]int, error) {
	if n < 2 || n > MaxJigsawPermutations {
		return nil, fmt.Errorf("jigsaw: %d permutations: want 2 to %d", n, MaxJigsawPermutations)
	}
	if start < 0 || start >= NumTilePermutations {
		return nil, fmt.Errorf("jigsaw: first permutation index %d outside [0, %d)", start, NumTilePermutations)
	}
	// Each permutation as an 81-bit mask, bit 9*i+v set when position i
	// holds tile v: the positions two permutations agree on are the
	// popcount of the masks' AND.
	lo := make([]uint64, NumTilePermutations)
	hi := make([]uint32, NumTilePermutations)
	p := [JigsawTiles]int{0, 1, 2, 3, 4, 5, 6, 7, 8}
	for k := range NumTilePermutations {
		var l uint64
		var h uint32
		for i, v := range p {
			if b := 9*i + v; b < 64 {
				l |= 1 << b
			} else {
				h |= 1 << (b - 64)
			}
		}
		lo[k], hi[k] = l, h
		nextPermutation(p[:])
	}
	// minDist[k] is permutation k's distance to the nearest chosen one
	// (0 for the chosen themselves, so they are never picked again).
	minDist := make([]uint8, NumTilePermutations)
	for k := range minDist {
		minDist[k] = JigsawTiles + 1
	}
	chosen := []int{start}
	for cur := start; len(chosen) < n; {
		cl, ch := lo[cur], hi[cur]
		best, bestD := -1, uint8(0)
		for k := range minDist {
			d := uint8(JigsawTiles - bits.OnesCount64(lo[k]&cl) - bits.OnesCount32(hi[k]&ch))
			if d < minDist[k] {
				minDist[k] = d
			}
			if minDist[k] > bestD { // strict: the lowest index keeps a tie
				best, bestD = k, minDist[k]
			}
		}
		chosen = append(chosen, best)
		cur = best
	}
	out := make([][JigsawTiles]int, n)
	for i, k := range chosen {
		out[i] = permutationAt(k)
	}
	return out, nil
}

// nextPermutation steps p to its lexicographic successor (wrapping from
// the last to the first).
func nextPermutation(p []int) {
	i := len(p) - 2
	for i >= 0 && p[i] >= p[i+1] {
		i--
	}
	if i >= 0 {
		j := len(p) - 1
		for p[j] <= p[i] {
			j--
		}
		p[i], p[j] = p[j], p[i]
	}
	for a, b := i+1, len(p)-1; a < b; a, b = a+1, b-1 {
		p[a], p[b] = p[b], p[a]
	}
}

// permutationAt is the permutation of lexicographic index k (its digits in
// the factorial number system pick the remaining tiles in order).
func permutationAt(k int) [JigsawTiles]int {
	var out [JigsawTiles]int
	left := []int{0, 1, 2, 3, 4, 5, 6, 7, 8}
	f := NumTilePermutations
	for i := range JigsawTiles {
		f /= JigsawTiles - i
		d := k / f
		k %= f
		out[i] = left[d]
		left = append(left[:d], left[d+1:]...)
	}
	return out
}
