// Command streamclient is a Kubernetes streaming client built on the
// libraries the kubelet's own client side uses: SPDY/3.1 from
// github.com/moby/spdystream and WebSocket from github.com/gorilla/websocket
// (both Debian packages). It connects to a URL that a CRI Exec, Attach or
// PortForward call returned and prints a JSON report of what came back, so
// berth's tests check its streaming server against framing code no one
// here wrote.
//
// Usage:
//
//	streamclient [flags] exec|attach URL
//	streamclient [flags] -port N portforward URL
package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// Report is what the program prints.
type Report struct {
	// HTTPStatus is the upgrade's answer (101 when it worked).
	HTTPStatus int    `json:"http_status"`
	Protocol   string `json:"protocol"`
	Stdout     string `json:"stdout"`
	Stderr     string `json:"stderr"`
	// StdoutBytes counts all of stdout (Stdout keeps the first MiB).
	StdoutBytes int64 `json:"stdout_bytes"`
	// Status is the error stream's content (v4: a metav1.Status).
	Status string `json:"status"`
	// Data is what port forwarding read back; Error its error stream.
	Data    string  `json:"data"`
	Error   string  `json:"error"`
	Seconds float64 `json:"seconds"`
}

type options struct {
	transport string
	protocols []string
	stdin     string
	stdinOpen time.Duration
	tty       bool
	resize    string
	port      int
	send      string
	timeout   time.Duration
}

func main() {
	var o options
	var protocols string
	flag.StringVar(&o.transport, "transport", "spdy", "spdy or websocket")
	flag.StringVar(&protocols, "protocols", "", "comma-separated subprotocols to offer (default per transport)")
	flag.StringVar(&o.stdin, "stdin", "", "text sent on stdin, which then ends (empty: no stdin stream)")
	flag.DurationVar(&o.stdinOpen, "stdin-open", 0, "keep stdin open this long after sending")
	flag.BoolVar(&o.tty, "tty", false, "open a resize stream (the request asked for a tty)")
	flag.StringVar(&o.resize, "resize", "", "WxH sent on the resize stream")
	flag.IntVar(&o.port, "port", 0, "port forwarding: the port")
	flag.StringVar(&o.send, "send", "", "port forwarding: text sent to the port")
	flag.DurationVar(&o.timeout, "timeout", 60*time.Second, "give up after")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: streamclient [flags] exec|attach|portforward URL")
		os.Exit(2)
	}
	if protocols != "" {
		o.protocols = strings.Split(protocols, ",")
	}
	mode, target := flag.Arg(0), flag.Arg(1)
	start := time.Now()
	var report Report
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		switch {
		case mode == "portforward" && o.transport == "spdy":
			err = spdyPortForward(target, o, &report)
		case mode == "portforward":
			err = wsPortForward(target, o, &report)
		case o.transport == "spdy":
			err = spdyRemoteCommand(target, o, &report)
		default:
			err = wsRemoteCommand(target, o, &report)
		}
	}()
	select {
	case <-done:
	case <-time.After(o.timeout):
		err = errors.New("timed out")
	}
	report.Seconds = time.Since(start).Seconds()
	out, _ := json.Marshal(report)
	fmt.Println(string(out))
	if err != nil {
		fmt.Fprintln(os.Stderr, "streamclient:", err)
		os.Exit(1)
	}
}

// capture keeps the first MiB of a stream and counts all of it.
type capture struct {
	mu    sync.Mutex
	buf   []byte
	total int64
}

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total += int64(len(p))
	if room := 1<<20 - len(c.buf); room > 0 {
		if room > len(p) {
			room = len(p)
		}
		c.buf = append(c.buf, p[:room]...)
	}
	return len(p), nil
}

func (c *capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf)
}

// dial opens the TCP (or TLS, skipping verification as the kubelet's
// client of containerd's self-signed server does) connection.
func dial(u *url.URL) (net.Conn, error) {
	if u.Scheme == "https" {
		return tls.Dial("tcp", u.Host, &tls.Config{InsecureSkipVerify: true})
	}
	return net.Dial("tcp", u.Host)
}

// bufferedConn reads what the HTTP response reader already buffered first.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// upgradeSPDY sends the upgrade request and reads the answer.
func upgradeSPDY(target string, protocols []string, report *Report) (net.Conn, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	conn, err := dial(u)
	if err != nil {
		return nil, err
	}
	req, _ := http.NewRequest("POST", target, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "SPDY/3.1")
	for _, p := range protocols {
		req.Header.Add("X-Stream-Protocol-Version", p)
	}
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, err
	}
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, req)
	if err != nil {
		conn.Close()
		return nil, err
	}
	report.HTTPStatus = resp.StatusCode
	report.Protocol = resp.Header.Get("X-Stream-Protocol-Version")
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		conn.Close()
		return nil, fmt.Errorf("upgrade refused: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return &bufferedConn{Conn: conn, r: r}, nil
}

func resizeJSON(spec string) ([]byte, error) {
	var w, h int
	if _, err := fmt.Sscanf(spec, "%dx%d", &w, &h); err != nil {
		return nil, fmt.Errorf("bad -resize %q", spec)
	}
	return json.Marshal(map[string]int{"Width": w, "Height": h})
}
