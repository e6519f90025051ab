"""The tamper-evident journal of every operation (R241-14), written to two sinks."""
