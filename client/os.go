package client

import "runtime"

// isWindows is true on Windows, where Unix permission bits mean nothing.
const isWindows = runtime.GOOS == "windows"
