"""The chat column and the conversation list."""
