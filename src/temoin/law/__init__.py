"""The law's rules, as data: legal profiles, roles, entitlements and motives."""
