"""Process plumbing shared by the SQLite writer process and the MIME parser processes."""
