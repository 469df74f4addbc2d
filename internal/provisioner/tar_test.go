package provisioner

import (
	"archive/tar"
	"io"
	"testing"
)

func tarHeader(t *testing.T, rc io.ReadCloser) (int64, int) {
	t.Helper()
	defer rc.Close()
	h, err := tar.NewReader(rc).Next()
	if err != nil {
		t.Fatal(err)
	}
	return h.Mode & 0o7777, h.Uid
}
