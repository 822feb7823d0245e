"""smsgw modem layer: PDU codec, AT protocol, async client and emulator for one modem."""
