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
	errNoPayee           = errors.New("the bank has no account for that payee (enter a customer's name or account number)")
	errInsufficientFunds = errors.New("insufficient funds")
	errSelfTransfer      = errors.New("you cannot send money to yourself")
)

// currency is the one currency of the bank; money writes its sign.
const currency = "EUR"

// seedUser is a demo user, as printed at start-up.
type seedUser struct {
	ID, Password, Email string
	IBAN                string // the account number, grouped by four as printed
	Balance             int64  // cents
	Admin               bool   // bank staff: may open the admin area
	// Unenrolled: the customer has set up no second factor with Authsignal
	// yet (the embedded emulator does not enrol them); their first sign-in
	// sends them to Authsignal's page to set one up.
	Unenrolled bool
}

// demoUsers: alice is a customer who is also the bank's admin; bob is a
// customer only; carol is a customer who has not set up two-step
// verification yet.
var demoUsers = []seedUser{
	{ID: "alice", Password: "alice-password", Email: "alice@bank.example", IBAN: "DE40 1001 0010 0000 0123 45",
		Balance: 100_000_00, Admin: true},
	{ID: "bob", Password: "bob-password", Email: "bob@bank.example", IBAN: "DE42 1001 0010 0000 0678 90",
		Balance: 2_500_00},
	{ID: "carol", Password: "carol-password", Email: "carol@bank.example", IBAN: "DE93 1001 0010 0000 0246 80",
		Balance: 1_500_00, Unenrolled: true},
}

type account struct {
	id       string
	iban     string
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
	IBAN    string
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
		b.accounts[u.ID] = &account{id: u.ID, iban: u.IBAN, email: u.Email, password: sha256.Sum256([]byte(u.Password)),
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
	out := Account{ID: a.id, IBAN: a.iban, Email: a.email, Balance: a.balance}
	for i := len(a.history) - 1; i >= 0 && len(out.Recent) < 10; i-- {
		out.Recent = append(out.Recent, a.history[i])
	}
	return out, true
}

// payee finds the customer a transfer is for: by user name, or by account
// number with or without its spaces, in any case.
func (b *bank) payee(s string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if a := b.accounts[s]; a != nil {
		return a.id, true
	}
	n := normalIBAN(s)
	for _, a := range b.accounts {
		if n != "" && normalIBAN(a.iban) == n {
			return a.id, true
		}
	}
	return "", false
}

func normalIBAN(s string) string { return strings.ToUpper(strings.ReplaceAll(s, " ", "")) }

// check reports why a transfer could not run now, or nil if it could.
// transfer checks again, under the same lock as it moves the money.
func (b *bank) check(from, to string, amount int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.checkLocked(from, to, amount)
}

func (b *bank) checkLocked(from, to string, amount int64) error {
	src := b.accounts[from]
	switch {
	case src == nil:
		return errNoAccount
	case to == from:
		return errSelfTransfer
	case b.accounts[to] == nil:
		return errNoPayee
	case src.balance < amount:
		return errInsufficientFunds
	}
	return nil
}

// transfer moves amount from one customer's account to another's.
func (b *bank) transfer(from, to string, amount int64, verified, via string) (*Transfer, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.checkLocked(from, to, amount); err != nil {
		return nil, err
	}
	src, dst := b.accounts[from], b.accounts[to]
	t := &Transfer{ID: newTransferID(), From: from, To: to, Amount: amount, At: b.now(), Verified: verified, Via: via}
	src.balance -= amount
	src.history = append(src.history, Entry{TransferID: t.ID, At: t.At, Amount: -amount, Party: to, Verified: verified})
	dst.balance += amount
	dst.history = append(dst.history, Entry{TransferID: t.ID, At: t.At, Amount: amount, Party: from, Verified: verified})
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

// money formats cents as "€5,000.00" (or "-€5,000.00"): every amount the
// bank shows, on its pages and in its JSON, is written by money.
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
	return fmt.Sprintf("%s€%s.%02d", sign, sb.String(), cents%100)
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
