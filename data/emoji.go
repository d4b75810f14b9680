package data

import (
	"archive/tar"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/sslzoo/sslzoo/data/preprocess"
	"github.com/sslzoo/sslzoo/internal/cachedir"
	"github.com/sslzoo/sslzoo/internal/npmpack"
)

// The emoji colour data set comes from the npm package
// emoji-datasource-google (Apache-2.0): Noto Color Emoji drawn as 64x64
// RGBA PNGs under package/img/google/64/, and package/emoji.json, which
// gives each emoji its image file name, its category and its skin-tone
// variations (each a PNG of its own, in its parent's category).
//
// Version 16.0.0 holds 3,786 such PNGs (1,911 emoji and 1,875 skin-tone
// variations) in 10 categories. One category, "Component", is left out:
// its 5 images are the bare skin-tone swatches (flat colour squares that
// are parts of other emoji, not emoji of a subject), which leaves 3,781
// images in the 9 EmojiClasses: 3,261 train and 520 test (13.8%; see
// EmojiInTest). People & Body, with most of the skin-tone variations, is
// 2,261 of them (292 of the 520 test images, the majority-class rate).
const (
	EmojiPackage = "emoji-datasource-google"
	EmojiVersion = "16.0.0"
)

// EmojiClasses are the category names in label order: the 9 categories of
// emoji.json but "Component", sorted by name, so a label means the same
// category in every version that keeps these names.
var EmojiClasses = []string{
	"Activities", "Animals & Nature", "Flags", "Food & Drink", "Objects",
	"People & Body", "Smileys & Emotion", "Symbols", "Travel & Places",
}

// emojiDropped are emoji.json categories that are not classes.
var emojiDropped = map[string]bool{"Component": true}

// EmojiSide is the width and height of every image.
const EmojiSide = 64

// EmojiTestPercent is the share of emoji in the test split; see EmojiInTest.
const EmojiTestPercent = 15

// tarballPin is the size and sha256 a fetched npm tarball must have.
type tarballPin = npmpack.Pin

// emojiPin pins the tarball `npm pack emoji-datasource-google@16.0.0`
// fetches, so that a changed or tampered package is refused. Tests pass
// their own pin to fetchEmoji instead of changing this one.
var emojiPin = tarballPin{Size: 74344091, SHA256: "fb5fd131b362aab7a55542d2a147a79708cce0a8b1c1bbacd470172708b5c438"}

// Bounds on what extraction accepts from the tarball. The real package
// unpacks to 78 MB, its largest 64-px PNG is 9 KB and emoji.json 1.3 MB.
const (
	emojiMaxUnpacked = 256 << 20 // the whole tar stream, skipped members included
	emojiMaxPNG      = 1 << 20
	emojiMaxJSON     = 32 << 20
	emojiMaxFiles    = 16384
)

const (
	emojiPNGPrefix = "package/img/google/64/"
	emojiJSON      = "emoji.json"
	emojiPNGDir    = "64" // inside EmojiDir
)

// emojiImageName is what an image file name must look like: code points
// in lower-case hex joined by "-", as the package names them. It has no
// "/" and no "..", so a name from the tarball or emoji.json cannot leave
// its folder.
var emojiImageName = regexp.MustCompile(`^[0-9a-f]{1,8}(-[0-9a-f]{1,8}){0,15}\.png$`)

// EmojiDir is where FetchEmoji puts the set: emoji.json and 64/*.png.
func EmojiDir() string { return filepath.Join(cachedir.Dir(), EmojiPackage, EmojiVersion) }

// EmojiCached reports whether a complete fetched copy is in EmojiDir.
func EmojiCached() bool { return emojiComplete(EmojiDir()) }

func emojiComplete(dir string) bool { return npmpack.Complete(dir) }

// FetchEmoji makes sure the set is in EmojiDir and returns that folder.
// When it is missing, it runs `npm pack emoji-datasource-google@16.0.0` in
// a temporary folder (npm pack runs no package scripts), checks the
// tarball's size and sha256, and extracts emoji.json and the 64-px PNGs,
// nothing else, into a temporary folder that is renamed into place, so an
// interrupted fetch leaves nothing half-written.
func FetchEmoji(ctx context.Context) (string, error) {
	return fetchEmoji(ctx, EmojiDir(), emojiPin)
}

func fetchEmoji(ctx context.Context, dir string, pin tarballPin) (string, error) {
	err := npmpack.Install(ctx, dir, EmojiPackage+"@"+EmojiVersion, pin, func(tgz *os.File, into string) error {
		n, err := extractEmoji(tgz, into, emojiMaxUnpacked)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("holds no %s*.png", emojiPNGPrefix)
		}
		if _, err := os.Stat(filepath.Join(into, emojiJSON)); err != nil {
			return fmt.Errorf("holds no package/%s", emojiJSON)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("fetch emoji: %w", err)
	}
	return dir, nil
}

// errTooBig marks a stream that unpacks past its bound.
var errTooBig = errors.New("over the size limit")

// boundedReader fails with errTooBig once more than n bytes are read,
// unlike io.LimitReader, whose silent EOF would read as a truncated file.
type boundedReader struct {
	r io.Reader
	n int64
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.n < 0 {
		return 0, errTooBig
	}
	if int64(len(p)) > b.n+1 {
		p = p[:b.n+1]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	if b.n < 0 {
		return n, errTooBig
	}
	return n, err
}

// extractEmoji writes package/emoji.json and the PNGs directly under
// package/img/google/64/ of the gzipped tarball r into dir (as emoji.json
// and 64/NAME.png) and returns how many PNGs it wrote. Every other member
// is skipped; the names kept are matched exactly (emojiImageName), only
// regular files are written, a kept name may appear once, and the stream
// may unpack to at most maxUnpacked bytes, so no member can write outside
// dir or fill the disk.
func extractEmoji(r io.Reader, dir string, maxUnpacked int64) (int, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return 0, err
	}
	br := &boundedReader{r: zr, n: maxUnpacked}
	tr := tar.NewReader(br)
	if err := os.Mkdir(filepath.Join(dir, emojiPNGDir), 0o755); err != nil {
		return 0, err
	}
	seen := map[string]bool{}
	n := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return n, nil
		}
		if errors.Is(err, errTooBig) {
			return n, fmt.Errorf("unpacks to more than %d bytes: %w", maxUnpacked, err)
		}
		if err != nil {
			return n, err
		}
		var dst string
		limit := int64(emojiMaxPNG)
		if png, ok := strings.CutPrefix(h.Name, emojiPNGPrefix); ok && emojiImageName.MatchString(png) {
			dst = filepath.Join(emojiPNGDir, png)
		} else if h.Name == "package/"+emojiJSON {
			dst, limit = emojiJSON, emojiMaxJSON
		}
		if dst == "" || h.Typeflag != tar.TypeReg {
			continue
		}
		if seen[dst] {
			return n, fmt.Errorf("%s: appears twice", h.Name)
		}
		seen[dst] = true
		if h.Size > limit {
			return n, fmt.Errorf("%s: %d bytes, more than the %d allowed", h.Name, h.Size, limit)
		}
		if dst != emojiJSON && n >= emojiMaxFiles {
			return n, fmt.Errorf("more than %d PNGs", emojiMaxFiles)
		}
		b, err := io.ReadAll(tr)
		if errors.Is(err, errTooBig) {
			return n, fmt.Errorf("unpacks to more than %d bytes: %w", maxUnpacked, err)
		}
		if err != nil {
			return n, fmt.Errorf("%s: %w", h.Name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o644); err != nil {
			return n, err
		}
		if dst != emojiJSON {
			n++
		}
	}
}

// EmojiInTest reports whether the emoji whose image file is name (the base
// emoji's, for a skin-tone variation) is in the test split: the first 8
// bytes of sha256(name), big-endian, mod 100 below EmojiTestPercent. In
// Python: int(hashlib.sha256(name.encode()).hexdigest()[:16], 16) % 100 < 15.
// A skin-tone variation goes where its base emoji goes, so no emoji is in
// both splits in another skin tone; the groups are uneven (1 to 26
// images), so the test share of images is near, not at, 15%.
func EmojiInTest(name string) bool { return emojiHash(name)%100 < EmojiTestPercent }

func emojiHash(name string) uint64 {
	sum := sha256.Sum256([]byte(name))
	return binary.BigEndian.Uint64(sum[:8])
}

// emojiEntry is the part of an emoji.json record that is used.
type emojiEntry struct {
	Image          string `json:"image"`
	Category       string `json:"category"`
	HasImgGoogle   *bool  `json:"has_img_google"`
	SkinVariations map[string]struct {
		Image        string `json:"image"`
		HasImgGoogle *bool  `json:"has_img_google"`
	} `json:"skin_variations"`
}

type emojiSample struct {
	name, group string
	hash        uint64 // emojiHash(group)
	label       int
}

// LoadEmoji reads the train or test split of the emoji set in dir (as
// FetchEmoji leaves it: emoji.json and 64/*.png; or the npm package's
// folder, with img/google/64/*.png) into memory as 3x64x64
// RGB images, labelled with their index in EmojiClasses. Every emoji.json
// record and each of its skin-tone variations is one image, unless
// has_img_google says the set has no picture of it; the "Component"
// records are left out. The split is EmojiInTest's. Samples are ordered
// by that same hash (then file name), a fixed shuffle, so the first N of a
// split (eval --limit-train) mix the categories instead of being all flags
// (a skin-tone group stays together).
func LoadEmoji(dir string, train bool) (*Images, error) {
	jsonPath := filepath.Join(dir, emojiJSON)
	pngDir := filepath.Join(dir, emojiPNGDir)
	if _, err := os.Stat(pngDir); err != nil {
		// The package's own layout, for a folder where the tarball was unpacked.
		if alt := filepath.Join(dir, "img", "google", "64"); isDir(alt) {
			pngDir = alt
		}
	}
	if st, err := os.Stat(jsonPath); err == nil && st.Size() > emojiMaxJSON {
		return nil, fmt.Errorf("emoji: %s: %d bytes, more than the %d allowed", jsonPath, st.Size(), emojiMaxJSON)
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return nil, fmt.Errorf("emoji: %w", err)
	}
	var entries []emojiEntry
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, fmt.Errorf("emoji: %s: %w", jsonPath, err)
	}
	class := make(map[string]int, len(EmojiClasses))
	for i, c := range EmojiClasses {
		class[c] = i
	}
	seen := map[string]bool{}
	var samples []emojiSample
	add := func(name, group string, has *bool, label int) error {
		if has != nil && !*has {
			return nil
		}
		if !emojiImageName.MatchString(name) {
			return fmt.Errorf("emoji: %s: image %q is not a file name like 1f600.png", jsonPath, name)
		}
		if seen[name] {
			return fmt.Errorf("emoji: %s: image %s is listed twice", jsonPath, name)
		}
		seen[name] = true
		if EmojiInTest(group) != train {
			samples = append(samples, emojiSample{name: name, group: group, hash: emojiHash(group), label: label})
		}
		return nil
	}
	for _, e := range entries {
		if emojiDropped[e.Category] {
			continue
		}
		label, ok := class[e.Category]
		if !ok {
			return nil, fmt.Errorf("emoji: %s: image %s has category %q, not one of %q", jsonPath, e.Image, e.Category, EmojiClasses)
		}
		if err := add(e.Image, e.Image, e.HasImgGoogle, label); err != nil {
			return nil, err
		}
		for _, v := range e.SkinVariations {
			if err := add(v.Image, e.Image, v.HasImgGoogle, label); err != nil {
				return nil, err
			}
		}
	}
	slices.SortFunc(samples, func(a, b emojiSample) int {
		return cmp.Or(cmp.Compare(a.hash, b.hash), cmp.Compare(a.group, b.group), cmp.Compare(a.name, b.name))
	})
	name := "emoji-test"
	if train {
		name = "emoji-train"
	}
	const plane = EmojiSide * EmojiSide
	s := &Images{Name: name, N: len(samples), C: 3, H: EmojiSide, W: EmojiSide,
		Pix: make([]uint8, len(samples)*3*plane), Labels: make([]int, len(samples)), Classes: EmojiClasses}
	// Decoding is most of the cost of opening the set; spread it over the cores.
	errs := make([]error, len(samples))
	var wg sync.WaitGroup
	workers := min(runtime.GOMAXPROCS(0), len(samples))
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(samples); i += workers {
				s.Labels[i] = samples[i].label
				errs[i] = decodeEmoji(filepath.Join(pngDir, samples[i].name), s.Pix[i*3*plane:(i+1)*3*plane])
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			more := 0
			for _, e := range errs[i+1:] {
				if e != nil {
					more++
				}
			}
			if more > 0 {
				return nil, fmt.Errorf("emoji: %w (and %d more images failed)", err, more)
			}
			return nil, fmt.Errorf("emoji: %w", err)
		}
	}
	return s, nil
}

// decodeEmoji decodes one 64x64 PNG into dst, 3 planes of 64x64 bytes, with
// its alpha composited over white.
func decodeEmoji(path string, dst []uint8) error {
	b, err := preprocess.ReadFile(path, emojiMaxPNG)
	if err != nil {
		return err
	}
	img, err := preprocess.Decode(path, b, preprocess.DecodeOptions{MaxPixels: EmojiSide * EmojiSide, MaxBytes: emojiMaxPNG})
	if err != nil {
		return err
	}
	if r := img.Bounds(); r.Dx() != EmojiSide || r.Dy() != EmojiSide {
		return fmt.Errorf("%s: %dx%d pixels, want %dx%d", path, r.Dx(), r.Dy(), EmojiSide, EmojiSide)
	}
	compositeOnWhite(img, dst)
	return nil
}

// compositeOnWhite writes img (64x64) as RGB planes into dst, with its
// alpha composited over a white background: out = (c*a + 255*(255-a))/255,
// rounded, on the 8-bit straight (non-premultiplied) colour.
//
// Why composite, and why white: a fully transparent pixel's stored colour
// is whatever the encoder left (black in these PNGs), so dropping alpha as
// PIL's convert("RGB") does (the image-folder path) draws every emoji on
// black and turns its soft anti-aliased edge into a dark halo. White is the
// background emoji are drawn for (pages, chat bubbles), keeps the dark
// outlines of the Noto artwork visible, and is neutral in colour (a=b=0 in
// Lab), so a colorization model is never asked to predict a background
// hue.
func compositeOnWhite(img image.Image, dst []uint8) {
	const n = EmojiSide * EmojiSide
	over := func(c, a uint8) uint8 {
		return uint8((uint32(c)*uint32(a) + 255*(255-uint32(a)) + 127) / 255)
	}
	r := img.Bounds()
	if m, ok := img.(*image.NRGBA); ok { // what 8-bit RGBA PNGs decode to
		for y := range EmojiSide {
			row := m.Pix[m.PixOffset(r.Min.X, r.Min.Y+y):][:4*EmojiSide]
			for x := range EmojiSide {
				p, a := row[4*x:4*x+4], row[4*x+3]
				i := y*EmojiSide + x
				dst[i], dst[n+i], dst[2*n+i] = over(p[0], a), over(p[1], a), over(p[2], a)
			}
		}
		return
	}
	for y := range EmojiSide {
		for x := range EmojiSide {
			c := color.NRGBAModel.Convert(img.At(r.Min.X+x, r.Min.Y+y)).(color.NRGBA)
			i := y*EmojiSide + x
			dst[i], dst[n+i], dst[2*n+i] = over(c.R, c.A), over(c.G, c.A), over(c.B, c.A)
		}
	}
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// OpenEmoji loads a split of the emoji set from dir, or from EmojiDir when
// dir is "", fetching it there first when it is not cached.
func OpenEmoji(ctx context.Context, dir string, train bool) (*Images, error) {
	if dir == "" {
		var err error
		if dir, err = FetchEmoji(ctx); err != nil {
			return nil, fmt.Errorf("%w (or unpack %s@%s and use emoji:DIR/package)", err, EmojiPackage, EmojiVersion)
		}
	}
	return LoadEmoji(dir, train)
}
