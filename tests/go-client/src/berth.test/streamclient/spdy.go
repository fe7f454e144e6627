package main

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/moby/spdystream"
)

// spdyRemoteCommand runs the client side of remotecommand v2–v5 over SPDY:
// error stream first, then the data streams, as client-go does.
func spdyRemoteCommand(target string, o options, report *Report) error {
	protocols := o.protocols
	if protocols == nil {
		protocols = []string{"v5.channel.k8s.io", "v4.channel.k8s.io"}
	}
	conn, err := upgradeSPDY(target, protocols, report)
	if err != nil {
		return err
	}
	sc, err := spdystream.NewConnection(conn, false)
	if err != nil {
		return err
	}
	go sc.Serve(spdystream.NoOpStreamHandler)
	defer sc.Close()
	open := func(kind string) (*spdystream.Stream, error) {
		h := http.Header{}
		h.Set("streamType", kind)
		s, err := sc.CreateStream(h, nil, false)
		if err != nil {
			return nil, err
		}
		return s, s.WaitTimeout(10 * time.Second)
	}
	errStream, err := open("error")
	if err != nil {
		return fmt.Errorf("error stream: %w", err)
	}
	// The client never writes on the error stream.
	errStream.Close()
	statusDone := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(errStream)
		statusDone <- b
	}()
	var stdout, stderr capture
	var wg sync.WaitGroup
	if o.stdin != "" {
		in, err := open("stdin")
		if err != nil {
			return fmt.Errorf("stdin stream: %w", err)
		}
		go func() {
			in.Write([]byte(o.stdin))
			time.Sleep(o.stdinOpen)
			in.Close()
		}()
	}
	out, err := open("stdout")
	if err != nil {
		return fmt.Errorf("stdout stream: %w", err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); io.Copy(&stdout, out) }()
	if !o.tty {
		errOut, err := open("stderr")
		if err != nil {
			return fmt.Errorf("stderr stream: %w", err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); io.Copy(&stderr, errOut) }()
	} else {
		resize, err := open("resize")
		if err != nil {
			return fmt.Errorf("resize stream: %w", err)
		}
		if o.resize != "" {
			b, err := resizeJSON(o.resize)
			if err != nil {
				return err
			}
			resize.Write(append(b, '\n'))
		}
	}
	wg.Wait()
	report.Status = string(<-statusDone)
	report.Stdout, report.Stderr, report.StdoutBytes = stdout.String(), stderr.String(), stdout.total
	return nil
}

// spdyPortForward opens one forwarded connection (error then data stream,
// with a request id) and reads until the port closes it.
func spdyPortForward(target string, o options, report *Report) error {
	conn, err := upgradeSPDY(target, []string{"portforward.k8s.io"}, report)
	if err != nil {
		return err
	}
	sc, err := spdystream.NewConnection(conn, false)
	if err != nil {
		return err
	}
	go sc.Serve(spdystream.NoOpStreamHandler)
	defer sc.Close()
	h := http.Header{}
	h.Set("streamType", "error")
	h.Set("port", fmt.Sprint(o.port))
	h.Set("requestID", "0")
	errStream, err := sc.CreateStream(h, nil, false)
	if err != nil {
		return err
	}
	if err := errStream.WaitTimeout(10 * time.Second); err != nil {
		return err
	}
	errStream.Close()
	errDone := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(errStream)
		errDone <- b
	}()
	h.Set("streamType", "data")
	data, err := sc.CreateStream(h, nil, false)
	if err != nil {
		return err
	}
	if err := data.WaitTimeout(10 * time.Second); err != nil {
		return err
	}
	if o.send != "" {
		data.Write([]byte(o.send))
	}
	var got capture
	io.Copy(&got, data)
	report.Data = got.String()
	report.Error = string(<-errDone)
	return nil
}
