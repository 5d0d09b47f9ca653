// Package emulatormethods holds the Chromium tests of the Authsignal
// emulator's verification methods (passkeys through DevTools' virtual
// authenticator, and an authenticator app), end to end on its hosted page.
// They live in the examples module, where chromedp is a dependency, so that
// the root module does not gain it.
package emulatormethods
