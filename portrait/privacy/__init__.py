"""Pseudonyms and sealed ids (pseudonyms: HMAC of a user id under the id key; e-mail and phone masking), the id key's file and fingerprint (idkey)."""
