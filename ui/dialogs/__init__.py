"""Settings and model library dialogs, and the form helpers they share."""
