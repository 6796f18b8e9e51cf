"""Crypto layer: AEAD, envelope encryption, KMS providers, key hierarchy, tokens, Temporal codec.

Imports nothing from the project except core/. See docs/crypto.md.
"""
