"""The stream's batch processors, one per input topic: intake (consent events),
receipts (sinks' receipts) and the consent gate (data events). Each takes a batch of
raw messages and is independent of Faust beyond the message shape, so the app wires
them to agents and the benchmark and unit tests drive them directly."""
