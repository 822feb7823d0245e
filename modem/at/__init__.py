"""Sans-I/O AT protocol core: framer, commands, result parsers, URCs and the session machine."""
