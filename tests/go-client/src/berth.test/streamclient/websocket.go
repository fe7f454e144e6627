package main

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// wsDial upgrades to a WebSocket offering `protocols`.
func wsDial(target string, protocols []string, report *Report) (*websocket.Conn, error) {
	target = strings.Replace(strings.Replace(target, "https://", "wss://", 1), "http://", "ws://", 1)
	d := websocket.Dialer{
		Subprotocols:     protocols,
		HandshakeTimeout: 10 * time.Second,
		TLSClientConfig:  &tls.Config{InsecureSkipVerify: true},
	}
	ws, resp, err := d.Dial(target, http.Header{})
	if resp != nil {
		report.HTTPStatus = resp.StatusCode
		report.Protocol = resp.Header.Get("Sec-WebSocket-Protocol")
	}
	return ws, err
}

type channelConn struct {
	ws     *websocket.Conn
	base64 bool
}

func (c *channelConn) send(channel byte, data []byte) error {
	if c.base64 {
		return c.ws.WriteMessage(websocket.TextMessage,
			append([]byte{'0' + channel}, []byte(base64.StdEncoding.EncodeToString(data))...))
	}
	return c.ws.WriteMessage(websocket.BinaryMessage, append([]byte{channel}, data...))
}

func (c *channelConn) read() (byte, []byte, error) {
	kind, msg, err := c.ws.ReadMessage()
	if err != nil {
		return 0, nil, err
	}
	if len(msg) == 0 {
		return 0, nil, fmt.Errorf("empty message")
	}
	if kind == websocket.TextMessage {
		data, err := base64.StdEncoding.DecodeString(string(msg[1:]))
		return msg[0] - '0', data, err
	}
	return msg[0], msg[1:], nil
}

// wsRemoteCommand: channels 0 stdin, 1 stdout, 2 stderr, 3 error,
// 4 resize; v5 closes stdin with the close signal (255, channel).
func wsRemoteCommand(target string, o options, report *Report) error {
	protocols := o.protocols
	if protocols == nil {
		protocols = []string{"v5.channel.k8s.io", "v4.channel.k8s.io"}
	}
	ws, err := wsDial(target, protocols, report)
	if err != nil {
		return err
	}
	defer ws.Close()
	c := &channelConn{ws: ws, base64: strings.Contains(report.Protocol, "base64")}
	if o.resize != "" {
		b, err := resizeJSON(o.resize)
		if err != nil {
			return err
		}
		if err := c.send(4, b); err != nil {
			return err
		}
	}
	if o.stdin != "" {
		if err := c.send(0, []byte(o.stdin)); err != nil {
			return err
		}
		if strings.HasPrefix(report.Protocol, "v5.") {
			time.Sleep(o.stdinOpen)
			if err := ws.WriteMessage(websocket.BinaryMessage, []byte{255, 0}); err != nil {
				return err
			}
		}
	}
	var stdout, stderr, status capture
	for {
		channel, data, err := c.read()
		if err != nil {
			break
		}
		switch channel {
		case 1:
			stdout.Write(data)
		case 2:
			stderr.Write(data)
		case 3:
			status.Write(data)
		}
	}
	report.Stdout, report.Stderr, report.StdoutBytes = stdout.String(), stderr.String(), stdout.total
	report.Status = status.String()
	return nil
}

// wsPortForward: channel 0 data, 1 error; each starts with the port.
func wsPortForward(target string, o options, report *Report) error {
	protocols := o.protocols
	if protocols == nil {
		protocols = []string{"v4.channel.k8s.io"}
	}
	ws, err := wsDial(target, protocols, report)
	if err != nil {
		return err
	}
	defer ws.Close()
	c := &channelConn{ws: ws, base64: strings.Contains(report.Protocol, "base64")}
	seen := map[byte]bool{}
	var data, errs capture
	sent := false
	for {
		channel, payload, err := c.read()
		if err != nil {
			break
		}
		if !seen[channel] {
			seen[channel] = true
			if len(payload) < 2 || int(binary.LittleEndian.Uint16(payload)) != o.port {
				return fmt.Errorf("channel %d did not start with port %d: %v", channel, o.port, payload)
			}
			payload = payload[2:]
		}
		switch channel {
		case 0:
			data.Write(payload)
		case 1:
			errs.Write(payload)
		}
		if seen[0] && seen[1] && !sent && o.send != "" {
			sent = true
			if err := c.send(0, []byte(o.send)); err != nil {
				return err
			}
		}
	}
	report.Data, report.Error = data.String(), errs.String()
	return nil
}
