"""Tests of the ASR emulator (run them with test/emulator/run-tests)."""
