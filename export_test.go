package stepup

// NewParkLimiter exposes the in-process Counter to the external tests.
func NewParkLimiter() Counter { return newParkLimiter() }

// OpenRecord and SealRecord let the external tests read and write a record
// as the guard keeps it in a Store sealed under keys (Config.RecordKeys).
func OpenRecord(keys [][]byte, id string, stored *Record) (*Record, error) {
	s, err := newRecordSealer(&Config{RecordKeys: keys})
	if err != nil {
		return nil, err
	}
	return s.open(id, stored)
}

// SealRecord seals rec under keys, as the guard does before a Put.
func SealRecord(keys [][]byte, rec *Record) (*Record, error) {
	s, err := newRecordSealer(&Config{RecordKeys: keys})
	if err != nil {
		return nil, err
	}
	return s.seal(rec)
}
