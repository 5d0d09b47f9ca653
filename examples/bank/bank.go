package main

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The bank is a toy: accounts in memory, amounts in cents, one mutex. What
// matters for the demo is that a transfer moves money exactly once.

var (
	errNoAccount         = errors.New("no such account")
	errInsufficientFunds = errors.New("insufficient funds")
	errSelfTransfer      = errors.New("you cannot send money to yourself")
)

// seedUser is a demo user, as printed at start-up.
type seedUser struct {
	ID, Password, Email string
	Balance             int64 // cents
	Admin               bool  // bank staff: may open the admin area
}

// demoUsers: alice is a customer who is also the bank's admin; bob is a
// customer only.
var demoUsers = []seedUser{
	{ID: "alice", Password: "alice-password", Email: "alice@bank.example", Balance: 10_000_00, Admin: true},
	{ID: "bob", Password: "bob-password", Email: "bob@bank.example", Balance: 2_500_00},
}

type account struct {
	id       string
	email    string
	password [32]byte // SHA-256 of the password: equal lengths for a constant-time compare
	balance  int64
	admin    bool
	history  []Entry // newest last
}

// Entry is one line of an account's history.
type Entry struct {
	TransferID string
	At         time.Time
	Amount     int64 // cents, negative when money left the account
	Party      string
	Verified   string // how the step-up was satisfied: stepup.Verification.How
}

// Transfer is an executed transfer.
type Transfer struct {
	ID       string
	From, To string
	Amount   int64
	At       time.Time
	Verified string
	Via      string // "form" or "api"
}

// Account is a copy of an account for display.
type Account struct {
	ID      string
	Email   string
	Balance int64
	Recent  []Entry // newest first
}

type bank struct {
	mu        sync.Mutex
	accounts  map[string]*account
	transfers map[string]*Transfer
	now       func() time.Time
	dummy     [32]byte
}

func newBank(users []seedUser, now func() time.Time) *bank {
	b := &bank{accounts: map[string]*account{}, transfers: map[string]*Transfer{}, now: now}
	for _, u := range users {
		b.accounts[u.ID] = &account{id: u.ID, email: u.Email, password: sha256.Sum256([]byte(u.Password)),
			balance: u.Balance, admin: u.Admin}
	}
	b.dummy = sha256.Sum256([]byte("no such user"))
	return b
}

// authenticate checks a password in constant time, also for unknown users.
func (b *bank) authenticate(user, password string) bool {
	got := sha256.Sum256([]byte(password))
	b.mu.Lock()
	a := b.accounts[user]
	want := b.dummy
	if a != nil {
		want = a.password
	}
	b.mu.Unlock()
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1 && a != nil
}

func (b *bank) exists(user string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.accounts[user] != nil
}

// isAdmin reports whether user is bank staff.
func (b *bank) isAdmin(user string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	a := b.accounts[user]
	return a != nil && a.admin
}

func (b *bank) account(user string) (Account, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	a := b.accounts[user]
	if a == nil {
		return Account{}, false
	}
	out := Account{ID: a.id, Email: a.email, Balance: a.balance}
	for i := len(a.history) - 1; i >= 0 && len(out.Recent) < 10; i-- {
		out.Recent = append(out.Recent, a.history[i])
	}
	return out, true
}

// transfer moves amount from one account to a payee: another customer of
// the bank or, for any other name, an outside account.
func (b *bank) transfer(from, to string, amount int64, verified, via string) (*Transfer, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	src := b.accounts[from]
	switch {
	case src == nil:
		return nil, errNoAccount
	case to == from:
		return nil, errSelfTransfer
	case src.balance < amount:
		return nil, errInsufficientFunds
	}
	t := &Transfer{ID: newTransferID(), From: from, To: to, Amount: amount, At: b.now(), Verified: verified, Via: via}
	src.balance -= amount
	src.history = append(src.history, Entry{TransferID: t.ID, At: t.At, Amount: -amount, Party: to, Verified: verified})
	if dst := b.accounts[to]; dst != nil {
		dst.balance += amount
		dst.history = append(dst.history, Entry{TransferID: t.ID, At: t.At, Amount: amount, Party: from, Verified: verified})
	}
	b.transfers[t.ID] = t
	return t, nil
}

// transferOf returns a transfer the user sent.
func (b *bank) transferOf(user, id string) (Transfer, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.transfers[id]
	if t == nil || t.From != user {
		return Transfer{}, false
	}
	return *t, true
}

func (b *bank) setEmail(user, email string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	a := b.accounts[user]
	if a == nil {
		return errNoAccount
	}
	a.email = email
	return nil
}

func newTransferID() string {
	var r [8]byte
	_, _ = rand.Read(r[:])
	return hex.EncodeToString(r[:])
}

// amountRE is deliberately strict: the handler must never read an amount
// that the policy's number attribute reads differently ("5,000", "1e4",
// " 5000", "0x1p13" are all refused here).
var amountRE = regexp.MustCompile(`^[0-9]{1,9}(\.[0-9]{1,2})?$`)

// parseAmount reads "5000" or "5000.00" as cents.
func parseAmount(s string) (int64, error) {
	if !amountRE.MatchString(s) {
		return 0, errors.New("enter an amount such as 250 or 5000.00")
	}
	whole, frac, _ := strings.Cut(s, ".")
	for len(frac) < 2 {
		frac += "0"
	}
	n, err := strconv.ParseInt(whole+frac, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("the amount must be more than zero")
	}
	return n, nil
}

// money formats cents as "5,000.00" (or "-5,000.00").
func money(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	whole := strconv.FormatInt(cents/100, 10)
	var sb strings.Builder
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			sb.WriteByte(',')
		}
		sb.WriteRune(c)
	}
	return fmt.Sprintf("%s%s.%02d", sign, sb.String(), cents%100)
}

var payeeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$`)

func checkPayee(to string) error {
	if !payeeRE.MatchString(to) {
		return errors.New("enter a payee: letters, digits, spaces, dots, dashes")
	}
	return nil
}

func checkEmail(s string) error {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || len(s) > 254 {
		return errors.New("enter an email address such as you@example.com")
	}
	return nil
}
