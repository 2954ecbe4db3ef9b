"""Stream processors of this installation (discovered by the worker; see README.md here)."""
