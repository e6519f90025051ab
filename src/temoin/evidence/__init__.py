"""Evidence formats shared by the camera and the vault: the manifest, the receipt, the hash chain."""
