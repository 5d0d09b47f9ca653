package main

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// The bank's browser tests drive one tab: a few steps at a time, an
// element's text, the address the tab is at.

func browserStep(t *testing.T, browser context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(browser, 20*time.Second)
	defer cancel()
	require.NoError(t, chromedp.Do(ctx, steps...))
}

func browserText(t *testing.T, browser context.Context, id string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(browser, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
	require.NoError(t, err)
	return s
}

func browserLocation(t *testing.T, browser context.Context) string {
	t.Helper()
	s, err := chromedp.Run(browser, chromedp.Location())
	require.NoError(t, err)
	return s
}
