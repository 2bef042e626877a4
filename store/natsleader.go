package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// LeaderChunks reads the chunks of an object store's stream from the
// stream's leader ($JS.API.STREAM.MSG.GET), not with direct gets. A direct
// get is answered by any replica, and NATS prefers the replica on the
// server the client is connected to: a replica whose files were damaged
// (a flipped bit, a cut block) answers from what it has left, and every
// image read through that server was "corrupt" although the other two
// replicas held it whole (e2e TestACorruptedMinorityReplicaIsRepairedFromTheOthers).
// The leader's copy is the one the stream's consensus stands behind; it is
// also what the object store's own consumer read.
func LeaderChunks(nc *nats.Conn, stream string) ChunkGetter {
	return leaderChunks{nc: nc, subject: "$JS.API.STREAM.MSG.GET." + stream}
}

type leaderChunks struct {
	nc      *nats.Conn
	subject string
}

type msgGetRequest struct {
	Seq        uint64 `json:"seq"`
	NextBySubj string `json:"next_by_subj"`
}

type msgGetResponse struct {
	Message *struct {
		Subject string    `json:"subject"`
		Seq     uint64    `json:"seq"`
		Data    []byte    `json:"data"` // base64 on the wire
		Time    time.Time `json:"time"`
	} `json:"message"`
	Error *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
}

// noMessageErrCode is JetStream's "no message found" (JSNoMessageFoundErr).
const noMessageErrCode = 10037

// NextChunk is the first message on subject at or after seq.
func (l leaderChunks) NextChunk(ctx context.Context, seq uint64, subject string) (*jetstream.RawStreamMsg, error) {
	req, _ := json.Marshal(msgGetRequest{Seq: seq, NextBySubj: subject}) // cannot fail
	msg, err := l.nc.RequestWithContext(ctx, l.subject, req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.subject, err)
	}
	var resp msgGetResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, fmt.Errorf("%s: unreadable answer: %w", l.subject, err)
	}
	if resp.Error != nil {
		if resp.Error.ErrCode == noMessageErrCode || resp.Error.Code == 404 {
			return nil, jetstream.ErrMsgNotFound
		}
		return nil, fmt.Errorf("%s: %s (%d)", l.subject, resp.Error.Description, resp.Error.ErrCode)
	}
	if resp.Message == nil {
		return nil, fmt.Errorf("%s: an answer with no message", l.subject)
	}
	return &jetstream.RawStreamMsg{Subject: resp.Message.Subject, Sequence: resp.Message.Seq, Data: resp.Message.Data, Time: resp.Message.Time}, nil
}
