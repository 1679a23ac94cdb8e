"""Where jobs execute: in this process (local) or on a Ray cluster (a later backend)."""
