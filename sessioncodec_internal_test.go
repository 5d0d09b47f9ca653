package stepup

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The established mark round-trips, and a session written before it
// existed (version 1) still decodes, parks and all, as not established:
// a deployment does not drop the sessions of the browsers in flight.
func TestSessionCodecEstablished(t *testing.T) {
	d := sessionData{User: "uuuuuuuuuuuuuuuu", ID: "iiiiiiiiiiiiiiiiiiiiii", Open: 1_795_000_000, Established: 1_797_000_000,
		Parks: []parkRef{{ID: "pppppppppppppppppppppp", Expires: 1_795_000_600, Done: true}}}
	var got sessionData
	require.NoError(t, decodeSession(encodeSession(&d), &got))
	assert.Equal(t, d, got)

	v1 := []byte{1}
	v1 = appendStr(v1, d.User)
	v1 = appendStr(v1, d.ID)
	v1 = binary.AppendVarint(v1, d.Open)
	v1 = binary.AppendUvarint(v1, 1)
	v1 = appendStr(v1, d.Parks[0].ID)
	v1 = binary.AppendVarint(v1, d.Parks[0].Expires)
	v1 = append(v1, 1, 0, 0) // done; no grants, no passes
	got = sessionData{}
	require.NoError(t, decodeSession(v1, &got))
	want := d
	want.Established = 0
	assert.Equal(t, want, got)

	for _, version := range []byte{0, 3} {
		raw := encodeSession(&d)
		raw[0] = version
		assert.ErrorIs(t, decodeSession(raw, &sessionData{}), errSessionData, "version %d", version)
	}
	v2 := encodeSession(&d)
	v2[0] = 1 // the established field read as the park count: left over or malformed
	assert.Error(t, decodeSession(v2, &sessionData{}))
}
