package charts

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// files holds the charts, so that a worker deploys with the scaffold chart it was
// built with, wherever it runs. The all: prefix keeps _helpers.tpl and .helmignore.
//
//go:embed all:service
var files embed.FS

// ExtractService writes the scaffold chart into a directory under root named after
// its content's hash, once, and returns that directory. A directory already there is
// reused: the same content always lands in the same place.
func ExtractService(root string) (string, error) {
	h := sha256.New()
	err := fs.WalkDir(files, "service", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, "service-"+hex.EncodeToString(h.Sum(nil))[:12])
	if _, err := os.Stat(filepath.Join(dir, "Chart.yaml")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("extracting the scaffold chart: %w", err)
	}
	tmp, err := os.MkdirTemp(root, ".service-")
	if err != nil {
		return "", fmt.Errorf("extracting the scaffold chart: %w", err)
	}
	defer os.RemoveAll(tmp)
	err = fs.WalkDir(files, "service", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("service", path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(tmp, rel), 0o755)
		}
		b, err := files.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(tmp, rel), b, 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("extracting the scaffold chart: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil && !os.IsExist(err) {
		if _, serr := os.Stat(filepath.Join(dir, "Chart.yaml")); serr != nil {
			return "", fmt.Errorf("extracting the scaffold chart: %w", err)
		}
	}
	return dir, nil
}
