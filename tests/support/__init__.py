"""Helpers shared by test folders (never imported from another folder's conftest)."""
