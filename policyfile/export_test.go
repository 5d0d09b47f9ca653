package policyfile

// DecodeYAML exposes the YAML subset decoder to the tests: fellBack is
// true when the document lies outside the subset (Parse then hands it to
// goccy/go-yaml).
func DecodeYAML(data []byte) (f File, fellBack bool, err error) {
	err = decodeYAML(data, &f)
	if err == errFallback {
		return File{}, true, nil
	}
	return f, false, err
}
