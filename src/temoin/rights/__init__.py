"""Citizens' rights: the requests register, early erasure, redacted copies (face and voice redaction)."""
