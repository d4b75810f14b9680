package data

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// emojiMember is one tar member of a synthetic package.
type emojiMember struct {
	name string
	body []byte
	typ  byte   // 0: regular file
	link string // symlinks and hard links
}

// emojiTarball gzips a tar of members.
func emojiTarball(t *testing.T, members []emojiMember) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, m := range members {
		h := &tar.Header{Name: m.name, Mode: 0o644, Typeflag: m.typ, Linkname: m.link}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(m.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(m.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	return buf.Bytes()
}

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// emojiHalf is a 64x64 NRGBA image whose left half is fully transparent
// (stored black, as the real PNGs store it) and right half is c.
func emojiHalf(c color.NRGBA) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, EmojiSide, EmojiSide))
	for y := range EmojiSide {
		for x := EmojiSide / 2; x < EmojiSide; x++ {
			m.SetNRGBA(x, y, c)
		}
	}
	return m
}

// emojiPaletted is a 64x64 paletted image (a PNG with a tRNS chunk, which
// decodes to *image.Paletted, not NRGBA): top half transparent, bottom
// half half-transparent blue.
func emojiPaletted() *image.Paletted {
	m := image.NewPaletted(image.Rect(0, 0, EmojiSide, EmojiSide), color.Palette{
		color.NRGBA{0, 0, 0, 0}, color.NRGBA{0, 0, 255, 64},
	})
	for i := len(m.Pix) / 2; i < len(m.Pix); i++ {
		m.Pix[i] = 1
	}
	return m
}

// The synthetic set: its images and their colours.
var (
	emojiDog   = color.NRGBA{200, 100, 50, 128} // 1f436, Animals & Nature, train
	emojiSanta = color.NRGBA{255, 0, 0, 255}    // 1f385, People & Body, train
	emojiSkin  = color.NRGBA{10, 20, 30, 0}     // 1f385-1f3fd, its skin-tone variation
)

// emojiJSONFor is an emoji.json in the package's format (extra fields
// included) for the synthetic set. 1f600 and the variation 1f385-1f3fd hash
// into the test split, 1f436 and 1f385 into train, so the variation tests
// that it follows its base emoji.
func emojiJSONFor(t *testing.T) []byte {
	t.Helper()
	yes := true
	b, err := json.Marshal([]map[string]any{
		{"name": "GRINNING FACE", "image": "1f600.png", "category": "Smileys & Emotion", "subcategory": "face-smiling", "has_img_google": yes, "sort_order": 1},
		{"name": "DOG FACE", "image": "1f436.png", "category": "Animals & Nature", "has_img_google": yes},
		{"name": "FATHER CHRISTMAS", "image": "1f385.png", "category": "People & Body", "has_img_google": yes,
			"skin_variations": map[string]any{"1F3FD": map[string]any{"unified": "1F385-1F3FD", "image": "1f385-1f3fd.png", "has_img_google": yes}}},
		{"name": "EMOJI MODIFIER FITZPATRICK TYPE-4", "image": "1f3fd.png", "category": "Component", "has_img_google": yes},
		{"name": "NO GOOGLE IMAGE", "image": "1f9ff.png", "category": "Objects", "has_img_google": false},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// emojiPackageMembers is the synthetic package: the real layout, with
// members that must be skipped beside the ones that are kept.
func emojiPackageMembers(t *testing.T) []emojiMember {
	p := emojiPNGPrefix
	return []emojiMember{
		{name: "package/package.json", body: []byte(`{"name":"emoji-datasource-google"}`)},
		{name: "package/emoji.json", body: emojiJSONFor(t)},
		{name: "package/emoji_pretty.json", body: []byte("[]")},
		{name: p + "1f600.png", body: encodePNG(t, emojiPaletted())},
		{name: p + "1f436.png", body: encodePNG(t, emojiHalf(emojiDog))},
		{name: p + "1f385.png", body: encodePNG(t, emojiHalf(emojiSanta))},
		{name: p + "1f385-1f3fd.png", body: encodePNG(t, emojiHalf(emojiSkin))},
		{name: p + "1f3fd.png", body: encodePNG(t, emojiHalf(emojiSanta))},
		{name: "package/img/google/sheets/64.png", body: []byte("a sheet")},
		{name: "package/img/google/32/1f600.png", body: []byte("another size")},
	}
}

func emojiPinOf(b []byte) tarballPin {
	sum := sha256.Sum256(b)
	return tarballPin{Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}
}

// fakeNpm puts an npm on PATH whose "pack" leaves tgz in the current
// folder and prints its name, as npm pack does.
func fakeNpm(t *testing.T, tgz []byte) {
	t.Helper()
	bin := t.TempDir()
	name := EmojiPackage + "-" + EmojiVersion + ".tgz"
	src := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(src, tgz, 0o644); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\ncp '" + src + "' . && echo " + name + "\n"
	if err := os.WriteFile(filepath.Join(bin, "npm"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// TestFetchEmojiFakeNpm runs the fetch against a fake npm that "packs" a
// synthetic tarball in the real layout: the pin refuses a wrong size or
// hash and leaves no cache entry, a matching tarball is extracted (only
// emoji.json and the 64-px PNGs), and a cached copy needs no npm.
func TestFetchEmojiFakeNpm(t *testing.T) {
	tgz := emojiTarball(t, emojiPackageMembers(t))
	fakeNpm(t, tgz)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "cache", EmojiPackage, EmojiVersion)
	good := emojiPinOf(tgz)

	for _, c := range []struct {
		name string
		pin  tarballPin
		want string
	}{
		{"real pin", emojiPin, "bytes, want 74344091"},
		{"wrong sha256", tarballPin{Size: good.Size, SHA256: strings.Repeat("0", 64)}, "has sha256 " + good.SHA256 + ", want 0000"},
	} {
		if _, err := fetchEmoji(ctx, dir, c.pin); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		if _, err := os.Stat(filepath.Dir(dir)); err == nil {
			if entries, _ := os.ReadDir(filepath.Dir(dir)); len(entries) > 0 {
				t.Errorf("%s: a refused tarball left %v", c.name, entries)
			}
		}
	}

	got, err := fetchEmoji(ctx, dir, good)
	if err != nil || got != dir || !emojiComplete(dir) {
		t.Fatalf("fetch: %q %v", got, err)
	}
	var files []string
	filepath.WalkDir(filepath.Dir(dir), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	})
	want := []string{".complete", "64/1f385-1f3fd.png", "64/1f385.png", "64/1f3fd.png", "64/1f436.png", "64/1f600.png", "emoji.json"}
	if !slices.Equal(files, want) {
		t.Errorf("cache holds %q, want %q", files, want)
	}

	// Cached: no npm needed. Not cached and no npm: a clear error.
	t.Setenv("PATH", "")
	if _, err := fetchEmoji(ctx, dir, good); err != nil {
		t.Errorf("cached fetch: %v", err)
	}
	if _, err := fetchEmoji(ctx, filepath.Join(t.TempDir(), "x"), good); err == nil || !strings.Contains(err.Error(), "npm is not on PATH") {
		t.Errorf("no npm: %v", err)
	}
}

// TestFetchEmojiBrokenTarballs: a truncated download and a file that is
// not gzip at all fail (even when the pin matches them) and leave nothing
// in the cache.
func TestFetchEmojiBrokenTarballs(t *testing.T) {
	tgz := emojiTarball(t, emojiPackageMembers(t))
	for name, c := range map[string]struct {
		b    []byte
		want string
	}{
		"truncated": {tgz[:len(tgz)*2/3], "unexpected EOF"},
		"not gzip":  {[]byte("<html>404</html>"), "gzip: invalid header"},
	} {
		t.Run(name, func(t *testing.T) {
			b := c.b
			fakeNpm(t, b)
			parent := t.TempDir()
			dir := filepath.Join(parent, EmojiVersion)
			if _, err := fetchEmoji(context.Background(), dir, emojiPinOf(b)); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v, want %q", err, c.want)
			}
			if entries, _ := os.ReadDir(parent); len(entries) > 0 {
				t.Errorf("left %v in the cache", entries)
			}
		})
	}
}

// TestExtractEmojiHostile: names that climb out, are absolute, sit in a
// subfolder, or are links or folders are skipped; a kept name given twice,
// a member over its size bound and a stream that unpacks past its bound
// are errors.
func TestExtractEmojiHostile(t *testing.T) {
	p := emojiPNGPrefix
	ok := encodePNG(t, emojiHalf(emojiDog))
	root := t.TempDir()
	dir := filepath.Join(root, "a", "b")
	os.MkdirAll(dir, 0o755)
	n, err := extractEmoji(bytes.NewReader(emojiTarball(t, []emojiMember{
		{name: p + "1f436.png", body: ok},
		{name: "../1f600.png", body: ok},
		{name: "/tmp/1f600.png", body: ok},
		{name: p + "../../../../../1f600.png", body: ok},
		{name: p + "../1f600.png", body: ok},
		{name: p + "sub/1f600.png", body: ok},
		{name: p + "/1f600.png", body: ok},
		{name: "package//img/google/64/1f601.png", body: ok},
		{name: p + "1F602.png", body: ok},
		{name: p + "1f603.png.exe", body: ok},
		{name: p + "1f604.png", typ: tar.TypeSymlink, link: "/etc/passwd"},
		{name: p + "1f605.png", typ: tar.TypeLink, link: "package/emoji.json"},
		{name: p + "1f606.png", typ: tar.TypeDir},
		{name: "package/./emoji.json", body: []byte("[]")},
		{name: "package/../emoji.json", body: []byte("[]")},
	})), dir, 1<<20)
	if err != nil || n != 1 {
		t.Fatalf("extracted %d PNGs, %v; want 1", n, err)
	}
	var found []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			found = append(found, filepath.ToSlash(rel)+":"+d.Type().String())
		}
		return err
	})
	if want := []string{"a/b/64/1f436.png:" + os.FileMode(0).String()}; !slices.Equal(found, want) {
		t.Errorf("extracted %q, want only %q", found, want)
	}

	for _, c := range []struct {
		name    string
		members []emojiMember
		want    string
	}{
		{"twice", []emojiMember{{name: p + "1f436.png", body: ok}, {name: p + "1f436.png", body: ok}}, "appears twice"},
		{"json twice", []emojiMember{{name: "package/emoji.json", body: []byte("[]")}, {name: "package/emoji.json", body: []byte("[]")}}, "appears twice"},
		{"big png", []emojiMember{{name: p + "1f436.png", body: make([]byte, emojiMaxPNG+1)}}, "more than the 1048576 allowed"},
		{"bomb", []emojiMember{{name: "package/img/google/sheets/64.png", body: make([]byte, 2<<20)}}, "unpacks to more than 1048576 bytes"},
		{"bomb kept", []emojiMember{{name: "package/emoji.json", body: make([]byte, 2<<20)}}, "unpacks to more than 1048576 bytes"},
	} {
		d := t.TempDir()
		if _, err := extractEmoji(bytes.NewReader(emojiTarball(t, c.members)), d, 1<<20); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// emojiFolder writes the synthetic set as FetchEmoji leaves it.
func emojiFolder(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := extractEmoji(bytes.NewReader(emojiTarball(t, emojiPackageMembers(t))), dir, 1<<20); err != nil {
		t.Fatal(err)
	}
	return dir
}

// overWhite is compositing over white in floating point, the reference
// for the integer formula.
func overWhite(c, a uint8) uint8 {
	al := float64(a) / 255
	return uint8(math.Round(float64(c)*al + 255*(1-al)))
}

// TestLoadEmoji checks labels, the split (a skin-tone variation follows its
// base emoji), the order, the dropped records, and that alpha is composited
// over white for NRGBA and paletted PNGs alike.
func TestLoadEmoji(t *testing.T) {
	dir := emojiFolder(t)
	train, err := LoadEmoji(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	test, err := LoadEmoji(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	animals, people, smileys := slices.Index(EmojiClasses, "Animals & Nature"), slices.Index(EmojiClasses, "People & Body"), slices.Index(EmojiClasses, "Smileys & Emotion")
	// Order: hash of the base emoji's name (1f436 before 1f385), then name.
	if train.N != 3 || !slices.Equal(train.Labels, []int{animals, people, people}) || train.Name != "emoji-train" {
		t.Errorf("train: %d images, labels %v", train.N, train.Labels)
	}
	if test.N != 1 || !slices.Equal(test.Labels, []int{smileys}) || test.C != 3 || test.H != 64 || test.W != 64 {
		t.Errorf("test: %d images, labels %v, %dx%dx%d", test.N, test.Labels, test.C, test.H, test.W)
	}
	if !slices.Equal(Classes(train), EmojiClasses) {
		t.Errorf("classes %q", Classes(train))
	}

	// pixel is sample i's RGB at (x, y).
	pixel := func(s *Images, i, x, y int) [3]uint8 {
		const plane = 64 * 64
		px := s.Pix[i*3*plane:]
		j := y*64 + x
		return [3]uint8{px[j], px[plane+j], px[2*plane+j]}
	}
	white := [3]uint8{255, 255, 255}
	for _, c := range []struct {
		name string
		s    *Images
		i    int
		x, y int
		want [3]uint8
	}{
		{"dog, transparent", train, 0, 5, 5, white},
		{"dog, half alpha", train, 0, 40, 5, [3]uint8{overWhite(200, 128), overWhite(100, 128), overWhite(50, 128)}},
		{"variation, alpha 0 with a stored colour", train, 1, 40, 5, white},
		{"santa, opaque", train, 2, 63, 63, [3]uint8{255, 0, 0}},
		{"paletted, transparent", test, 0, 0, 0, white},
		{"paletted, alpha 64", test, 0, 10, 40, [3]uint8{overWhite(0, 64), overWhite(0, 64), overWhite(255, 64)}},
	} {
		if got := pixel(c.s, c.i, c.x, c.y); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	// Exhaustive check of the integer formula against the reference.
	img := image.NewNRGBA(image.Rect(0, 0, 64, 64))
	dst := make([]uint8, 3*64*64)
	for a := range 256 {
		for j := range 64 * 64 {
			img.Pix[4*j], img.Pix[4*j+3] = uint8(j), uint8(a)
		}
		compositeOnWhite(img, dst)
		for c := range 256 {
			if want := overWhite(uint8(c), uint8(a)); dst[c] != want {
				t.Fatalf("c %d a %d: %d, want %d", c, a, dst[c], want)
			}
		}
	}

	// Get serves the composited bytes as byte/255 (santa's right half is red).
	m, label, err := train.Get(2)
	if err != nil || label != people || m.Pix[63] != 1 || m.Pix[64*64+63] != 0 || m.Pix[64*64] != 1 {
		t.Errorf("Get: label %d, %v", label, err)
	}
	// Open resolves emoji:DIR, and the npm package's own layout works too.
	ds, err := Open(context.Background(), "emoji:"+dir, OpenOptions{Train: true})
	if err != nil || ds.Len() != 3 || !slices.Equal(Classes(ds), EmojiClasses) {
		t.Errorf("Open emoji:DIR: %v", err)
	}
	pkg := filepath.Join(t.TempDir(), "package")
	os.MkdirAll(filepath.Join(pkg, "img", "google"), 0o755)
	os.Rename(filepath.Join(dir, "64"), filepath.Join(pkg, "img", "google", "64"))
	os.Rename(filepath.Join(dir, "emoji.json"), filepath.Join(pkg, "emoji.json"))
	if s, err := LoadEmoji(pkg, false); err != nil || s.N != 1 {
		t.Errorf("package layout: %v", err)
	}
}

// TestLoadEmojiBad: emoji.json naming a file outside the folder, an
// unknown category, a repeated image, a missing file, an image of the
// wrong size and a broken PNG are errors that name what is wrong.
func TestLoadEmojiBad(t *testing.T) {
	for _, c := range []struct {
		name  string
		json  string
		files map[string][]byte
		want  string
	}{
		{"escape", `[{"image":"../../etc/passwd","category":"Objects"}]`, nil, `image "../../etc/passwd" is not a file name`},
		{"escape variation", `[{"image":"1f600.png","category":"Objects","skin_variations":{"x":{"image":"/etc/x.png"}}}]`, nil, `image "/etc/x.png"`},
		{"category", `[{"image":"1f600.png","category":"Cats"}]`, nil, `category "Cats"`},
		{"twice", `[{"image":"1f600.png","category":"Objects"},{"image":"1f600.png","category":"Flags"}]`, nil, "1f600.png is listed twice"},
		{"missing", `[{"image":"1f600.png","category":"Objects"}]`, nil, "1f600.png"},
		{"size", `[{"image":"1f600.png","category":"Objects"}]`, map[string][]byte{"1f600.png": encodePNG(t, image.NewNRGBA(image.Rect(0, 0, 32, 32)))}, "32x32 pixels, want 64x64"},
		{"huge", `[{"image":"1f600.png","category":"Objects"}]`, map[string][]byte{"1f600.png": encodePNG(t, image.NewGray(image.Rect(0, 0, 4000, 2)))}, "over the size limit"},
		{"broken", `[{"image":"1f600.png","category":"Objects"}]`, map[string][]byte{"1f600.png": encodePNG(t, emojiHalf(emojiDog))[:100]}, "byte offset"},
		{"json", `{"image":`, nil, "emoji.json"},
	} {
		dir := t.TempDir()
		os.Mkdir(filepath.Join(dir, "64"), 0o755)
		os.WriteFile(filepath.Join(dir, "emoji.json"), []byte(c.json), 0o644)
		for n, b := range c.files {
			os.WriteFile(filepath.Join(dir, "64", n), b, 0o644)
		}
		// 1f600.png is in the test split.
		if _, err := LoadEmoji(dir, false); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := LoadEmoji(t.TempDir(), true); err == nil || !strings.Contains(err.Error(), "emoji.json") {
		t.Errorf("empty folder: %v", err)
	}
}

// TestEmojiSplit pins the split rule (so it cannot change unnoticed: a
// change would mix old test images into training) and checks its share.
func TestEmojiSplit(t *testing.T) {
	for name, want := range map[string]bool{"1f600.png": true, "1f436.png": false, "1f44d.png": true, "26bd.png": false} {
		if EmojiInTest(name) != want {
			t.Errorf("EmojiInTest(%s) = %v", name, !want)
		}
	}
	in := 0
	const n = 20000
	for i := range n {
		if EmojiInTest(fmt.Sprintf("%x.png", 0x1f000+i)) {
			in++
		}
	}
	if f := float64(in) / n; math.Abs(f-EmojiTestPercent/100.0) > 0.01 {
		t.Errorf("test share %.3f, want %.2f", f, EmojiTestPercent/100.0)
	}
}

// TestEmojiReal checks the real set when it is in the cache, fetching it
// first when SSLZOO_FETCH=1 (tests stay off the network by default).
func TestEmojiReal(t *testing.T) {
	if !EmojiCached() && os.Getenv("SSLZOO_FETCH") == "1" {
		if _, err := FetchEmoji(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if !EmojiCached() {
		t.Skip("emoji set not cached in " + EmojiDir() + "; SSLZOO_FETCH=1 fetches it")
	}
	// Per class, in EmojiClasses order: 3,786 PNGs less the 5 Components.
	want := map[bool][]int{
		true:  {69, 127, 235, 115, 228, 1969, 138, 183, 197}, // 3,261
		false: {16, 32, 35, 16, 36, 292, 31, 41, 21},         // 520
	}
	for _, train := range []bool{true, false} {
		s, err := Open(context.Background(), "emoji", OpenOptions{Train: train})
		if err != nil {
			t.Fatal(err)
		}
		counts := make([]int, len(EmojiClasses))
		for _, l := range s.(*Images).Labels {
			counts[l]++
		}
		t.Logf("train %v: %d images, per class %v", train, s.Len(), counts)
		if !slices.Equal(counts, want[train]) {
			t.Errorf("train %v: per class %v, want %v", train, counts, want[train])
		}
	}
}
