package stepup

// NewParkLimiter exposes the in-process Counter to the external tests.
func NewParkLimiter() Counter { return newParkLimiter() }
