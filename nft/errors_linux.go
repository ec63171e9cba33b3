package nft

import (
	"errors"

	"golang.org/x/sys/unix"
)

// classify maps the kernel's errno to a plain-words error that still wraps
// it. nil stays nil.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return newKernelError(ErrPermission, err)
	case errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.EAFNOSUPPORT):
		return newKernelError(ErrNotSupported, err)
	case errors.Is(err, unix.ENOENT):
		return newKernelError(ErrMissing, err)
	case errors.Is(err, unix.EOPNOTSUPP):
		return &kernelError{msg: "the kernel's nftables lacks a feature this table needs (kernel too old?)", kind: ErrNotSupported, errno: err}
	}
	return err
}

// probeError classifies errors from the first contact with nftables, where
// "not found" and "not supported" both mean that nftables is missing.
func probeError(err error) error {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
		return newKernelError(ErrNotSupported, err)
	}
	return classify(err)
}
