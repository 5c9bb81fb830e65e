"""The learning loop (docs/learning.md): measured offer values, arbitration, offline evaluation and guard rails."""
