"""The chat domain's SQL, one module per topic; each query or transaction is one named function.

Lock order, so that concurrent nodes never deadlock: a transaction that may wait
for a lock takes doctor rows (`chat_doctors`) before consultation rows, and
appointment rows before doctor rows; the automatic pairing only ever uses
`SKIP LOCKED`, so it never waits at all.
"""
