package preprocess

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Extensions are the file name endings ExpandInputs collects from
// directories and globs (compared case-insensitively). Decoding never
// looks at them: a file is read by what its bytes are.
var Extensions = []string{".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}

// HasImageExt reports whether name ends in one of Extensions.
func HasImageExt(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	for _, e := range Extensions {
		if ext == e {
			return true
		}
	}
	return false
}

// ExpandInputs turns command-line arguments into the list of image files
// they name, in order:
//   - a file is taken as it is, whatever its name;
//   - a directory is walked recursively in lexical order for files with an
//     image extension, skipping names that start with "." (a directory
//     with none is an error);
//   - anything else that contains *, ? or [ is a filepath.Glob pattern,
//     whose matching files with an image extension are taken and whose
//     matching directories are walked (a pattern matching no image is an
//     error).
//
// A missing path is an error naming it. A path named twice (after
// filepath.Clean) is kept at its first place only.
func ExpandInputs(args []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		p = filepath.Clean(p)
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, arg := range args {
		if arg == "" {
			return nil, errors.New("inputs: an empty path")
		}
		st, err := os.Stat(arg)
		switch {
		case err == nil && st.IsDir():
			files, err := walkImages(arg)
			if err != nil {
				return nil, err
			}
			if len(files) == 0 {
				return nil, fmt.Errorf("inputs: directory %s holds no image files (%s)", arg, strings.Join(Extensions, " "))
			}
			for _, f := range files {
				add(f)
			}
		case err == nil:
			add(arg)
		case errors.Is(err, fs.ErrNotExist) && strings.ContainsAny(arg, "*?["):
			files, err := globImages(arg)
			if err != nil {
				return nil, err
			}
			for _, f := range files {
				add(f)
			}
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("inputs: %s does not exist", arg)
		default:
			return nil, fmt.Errorf("inputs: %w", err)
		}
	}
	return out, nil
}

// walkImages lists the image files under dir, in lexical order.
func walkImages(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("inputs: %w", err)
		}
		if p != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !HasImageExt(d.Name()) {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			// A link to a directory is not followed (WalkDir does not
			// either); a link to a file is an image like any other.
			if st, err := os.Stat(p); err != nil || st.IsDir() {
				return nil
			}
		}
		files = append(files, p)
		return nil
	})
	return files, err
}

func globImages(pattern string) ([]string, error) {
	matches, err := filepath.Glob(pattern)
	if err != nil {
		return nil, fmt.Errorf("inputs: pattern %q: %w", pattern, err)
	}
	if len(matches) == 0 {
		return nil, fmt.Errorf("inputs: pattern %q matches nothing (and no file has that name)", pattern)
	}
	var files []string
	for _, m := range matches { // Glob returns them sorted
		st, err := os.Stat(m)
		if err != nil {
			return nil, fmt.Errorf("inputs: %w", err)
		}
		if st.IsDir() {
			sub, err := walkImages(m)
			if err != nil {
				return nil, err
			}
			files = append(files, sub...)
		} else if HasImageExt(m) {
			files = append(files, m)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("inputs: pattern %q matches %d paths but no image files (%s)", pattern, len(matches), strings.Join(Extensions, " "))
	}
	return files, nil
}
