package authsignalbrowser_test

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/examples/internal/authsignalbrowser"
)

func TestTheVendoredFileIsThePinnedOne(t *testing.T) {
	sum := sha256.Sum256(authsignalbrowser.Script())
	assert.Equal(t, authsignalbrowser.ScriptSHA256, hex.EncodeToString(sum[:]), "the file is dist/index.min.js of the pinned version, unmodified")
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	assert.Contains(t, string(readme), authsignalbrowser.ScriptSHA256)
	assert.Contains(t, string(readme), "| version | "+authsignalbrowser.Version+" ")
	assert.Contains(t, string(readme), authsignalbrowser.StyleHash)
	license, err := os.ReadFile("LICENSE.md")
	require.NoError(t, err)
	assert.Contains(t, string(license), "MIT License")
}

func TestHandler(t *testing.T) {
	h := authsignalbrowser.Handler()
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "/authsignal-browser.js", nil))
		assert.Equal(t, http.StatusOK, rec.Code)
		assert.Equal(t, "text/javascript; charset=utf-8", rec.Header().Get("Content-Type"))
		assert.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
		if method == http.MethodGet {
			assert.True(t, strings.HasPrefix(rec.Body.String(), "var authsignal=function"), "the IIFE build")
		} else {
			assert.Empty(t, rec.Body.String())
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/authsignal-browser.js", nil))
	assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)
}
