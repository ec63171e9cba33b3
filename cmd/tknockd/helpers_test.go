package main

import "github.com/tknock/tknock/internal/testkit"

// syncBuffer is a logger's destination that a test reads while the daemon
// writes.
type syncBuffer = testkit.SyncBuffer
