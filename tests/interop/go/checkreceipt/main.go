// Command checkreceipt verifies an AgentGate receipt (a C2SP tlog-proof@v1
// file carrying its entry in the extra line) with Go's reference packages
// golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog.
//
// It is an independent second verifier for the interop tests: the note is
// opened with note.Open and the inclusion proof is checked with
// tlog.CheckRecord, whose leaf hash is SHA-256(0x00 || entry) as in RFC 9162.
//
// Usage: checkreceipt VERIFIER_KEY RECEIPT_FILE
//
// Exit codes: 0 verified, 1 verification failed, 2 bad usage.
package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const header = "c2sp.org/tlog-proof@v1"

type receipt struct {
	entry      []byte
	index      int64
	proof      tlog.RecordProof
	checkpoint []byte
}

type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: checkreceipt VERIFIER_KEY RECEIPT_FILE")
		os.Exit(2)
	}
	verifier, err := note.NewVerifier(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "invalid verifier key: %v\n", err)
		os.Exit(2)
	}
	data, err := os.ReadFile(os.Args[2])
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot read receipt: %v\n", err)
		os.Exit(2)
	}

	origin, index, size, err := check(data, verifier)
	if err != nil {
		fmt.Printf("FAIL %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("OK origin=%q index=%d size=%d\n", origin, index, size)
}

// check parses and verifies one receipt and returns its origin, index and tree size.
func check(data []byte, verifier note.Verifier) (string, int64, int64, error) {
	r, err := parseReceipt(data)
	if err != nil {
		return "", 0, 0, err
	}
	n, err := note.Open(r.checkpoint, note.VerifierList(verifier))
	if err != nil {
		return "", 0, 0, fmt.Errorf("opening checkpoint note: %w", err)
	}
	c, err := parseCheckpoint(n.Text)
	if err != nil {
		return "", 0, 0, err
	}
	if r.index >= c.size {
		return "", 0, 0, fmt.Errorf("index %d is not below tree size %d", r.index, c.size)
	}
	leaf := tlog.RecordHash(r.entry)
	if err := tlog.CheckRecord(r.proof, c.size, c.root, r.index, leaf); err != nil {
		return "", 0, 0, fmt.Errorf("inclusion proof: %w", err)
	}
	return c.origin, r.index, c.size, nil
}

func parseReceipt(data []byte) (*receipt, error) {
	split := bytes.Index(data, []byte("\n\n"))
	if split < 0 {
		return nil, errors.New("receipt: no blank line before the checkpoint")
	}
	lines := strings.Split(string(data[:split]), "\n")
	r := &receipt{checkpoint: data[split+2:]}

	if lines[0] != header {
		return nil, fmt.Errorf("receipt line 1: want %q, got %q", header, lines[0])
	}
	lines = lines[1:]
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "extra ") {
		return nil, errors.New("receipt line 2: want an extra line with the entry")
	}
	entry, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(lines[0], "extra "))
	if err != nil {
		return nil, fmt.Errorf("receipt line 2: %w", err)
	}
	r.entry = entry
	lines = lines[1:]

	if len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
		return nil, errors.New("receipt line 3: want an index line")
	}
	text := strings.TrimPrefix(lines[0], "index ")
	index, err := strconv.ParseInt(text, 10, 64)
	if err != nil || index < 0 || strconv.FormatInt(index, 10) != text {
		return nil, fmt.Errorf("receipt line 3: invalid index %q", text)
	}
	r.index = index

	for i, line := range lines[1:] {
		h, err := tlog.ParseHash(line)
		if err != nil {
			return nil, fmt.Errorf("receipt line %d: %w", i+4, err)
		}
		r.proof = append(r.proof, h)
	}
	return r, nil
}

func parseCheckpoint(text string) (*checkpoint, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 || lines[0] == "" {
		return nil, errors.New("checkpoint: want origin, size and root lines")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return nil, fmt.Errorf("checkpoint: invalid tree size %q", lines[1])
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		return nil, fmt.Errorf("checkpoint: root: %w", err)
	}
	return &checkpoint{origin: lines[0], size: size, root: root}, nil
}
