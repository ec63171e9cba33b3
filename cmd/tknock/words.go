package main

import "slices"

// commandWords reads `tknock help [COMMAND...]` as `tknock [COMMAND...]
// --help` and `tknock version` as `tknock --version`: the default command
// would otherwise take help and version for profile names. A profile of
// either name is still reached as `tknock knock help`.
func commandWords(args []string) []string {
	if len(args) == 0 {
		return args
	}
	switch args[0] {
	case "help":
		return append(slices.Clone(args[1:]), "--help")
	case "version":
		if len(args) == 1 {
			return []string{"--version"}
		}
	}
	return args
}
