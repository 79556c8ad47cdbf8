"""Pure rules with no I/O, shared by workflows and activities."""
